// Anonymous memory for weights the engine rearranges, asking the kernel for
// transparent huge pages: a token streams every weight once, and with 2 MiB
// pages the TLB and the hardware prefetcher no longer stop every 4 KiB.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aifn::engine {

class HugeBuffer {
 public:
  explicit HugeBuffer(size_t bytes);  // data() == nullptr when bytes == 0 or mmap fails
  ~HugeBuffer();
  HugeBuffer(HugeBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  HugeBuffer& operator=(HugeBuffer&& o) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  uint8_t* data() const { return data_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;  // mapped bytes
};

// Drops the whole pages inside [p, p + bytes) of a read-only file mapping from
// this process (MADV_DONTNEED): they stay in the page cache and come back on
// the next touch.
void release_pages(const void* p, size_t bytes);

}  // namespace aifn::engine
