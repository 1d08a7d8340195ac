#include "engine/huge_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

namespace aifn::engine {

constexpr size_t kHugePage = size_t(2) << 20;

HugeBuffer::HugeBuffer(size_t bytes) {
  if (bytes == 0) return;
  // Rounded up to whole huge pages: the kernel only backs aligned 2 MiB
  // ranges with them. Best effort: without THP this is ordinary memory.
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  (void)madvise(p, size, MADV_HUGEPAGE);
  data_ = static_cast<uint8_t*>(p);
  size_ = size;
}

HugeBuffer::~HugeBuffer() {
  if (data_ != nullptr) munmap(data_, size_);
}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = o.data_, size_ = o.size_;
    o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}

void release_pages(const void* p, size_t bytes) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace aifn::engine
