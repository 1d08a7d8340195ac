# aifn_upstream: the pooled HTTP/1.1 + TLS client for model upstreams and the
# `openai` provider on top of it.
add_library(aifn_upstream
  ${CMAKE_CURRENT_LIST_DIR}/upstream_client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/upstream_sse.cpp
  ${CMAKE_CURRENT_LIST_DIR}/openai_provider.cpp)
target_include_directories(aifn_upstream PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(aifn_upstream PUBLIC aifn_base aifn_config aifn_boost OpenSSL::SSL OpenSSL::Crypto
  PRIVATE aifn_warnings)

# In-test upstreams: a Beast server over plain TCP or TLS, and a throwaway CA.
add_library(aifn_upstream_testing STATIC
  ${CMAKE_CURRENT_LIST_DIR}/upstream_test_server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/upstream_test_certs.cpp)
target_include_directories(aifn_upstream_testing PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(aifn_upstream_testing PUBLIC aifn_base aifn_boost OpenSSL::SSL OpenSSL::Crypto
  PRIVATE aifn_warnings)

aifn_unit_test(aifn_upstream_test
  ${CMAKE_CURRENT_LIST_DIR}/upstream_client_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/upstream_sse_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/openai_provider_test.cpp)
target_link_libraries(aifn_upstream_test PRIVATE aifn_upstream aifn_upstream_testing)

aifn_fuzz_target(upstream_sse_fuzz SOURCES ${CMAKE_CURRENT_LIST_DIR}/upstream_sse_fuzz.cpp
  ${CMAKE_CURRENT_LIST_DIR}/upstream_sse.cpp LIBS aifn_upstream)
