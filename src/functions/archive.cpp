#include "functions/archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace aifn::functions {
namespace {

// libarchive's last error, which may be null (e.g. a gzip stream that ends
// before any tar header: found by the fuzzer).
std::string error_text(archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "no details from libarchive";
}


namespace fs = std::filesystem;

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

struct ReadArchive {
  archive* a = archive_read_new();
  ~ReadArchive() { archive_read_free(a); }
};

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

using Parts = std::vector<std::string>;

std::string join(const Parts& p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n && i < p.size(); ++i) {
    if (i) out += '/';
    out += p[i];
  }
  return out;
}

// Splits an entry path into components, dropping "." and empty ones.
// Absolute paths and ".." components are refused: they are how an archive
// reaches outside the destination.
Expected<Parts> safe_parts(const std::string& path, std::string_view what) {
  if (path.empty()) return fail(ErrorType::bad_request, fmt::format("archive {} has an empty path", what));
  if (path.front() == '/')
    return fail(ErrorType::bad_request, fmt::format("archive {} \"{}\" is an absolute path", what, path));
  Parts parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    if (c == "..")
      return fail(ErrorType::bad_request, fmt::format("archive {} \"{}\" has a \"..\" component", what, path));
    if (!c.empty() && c != ".") parts.push_back(std::move(c));
    i = j + 1;
  }
  return parts;
}

// Opens (creating as needed) the folder parts[0..n) below root, never following
// a symbolic link, so nothing can be written through one.
Expected<Fd> open_dir(int root, const Parts& parts, std::size_t n, const std::string& entry) {
  Fd cur(::dup(root));
  if (!cur) return fail(ErrorType::internal, fmt::format("dup: {}", errno_text(errno)));
  for (std::size_t i = 0; i < n; ++i) {
    if (::mkdirat(cur.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST)
      return fail(ErrorType::bad_request, fmt::format("archive entry \"{}\": cannot create folder \"{}\": {}", entry,
                                                      join(parts, i + 1), errno_text(errno)));
    Fd next(::openat(cur.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next)
      return fail(ErrorType::bad_request, fmt::format("archive entry \"{}\": \"{}\" is not a folder ({})", entry,
                                                      join(parts, i + 1), errno_text(errno)));
    cur = std::move(next);
  }
  return cur;
}

Expected<void> write_all(int fd, const char* p, std::size_t n, const std::string& entry) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorType::internal, fmt::format("archive entry \"{}\": write failed: {}", entry, errno_text(errno)));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return {};
}

struct PendingLink {
  Parts where;  // the link's own path
  std::string target;
  std::string entry;
};

// A symlink target, resolved against the folder holding the link, must stay
// inside dest. ".." after a component that is itself one of the archive's
// symlinks would resolve against that link's target, not lexically, so such
// targets are refused too (all symlinks are known: dest started empty).
Expected<void> check_link_target(const PendingLink& l, const std::set<std::string>& links) {
  if (l.target.empty())
    return fail(ErrorType::bad_request, fmt::format("archive symlink \"{}\" has an empty target", l.entry));
  if (l.target.front() == '/')
    return fail(ErrorType::bad_request,
                fmt::format("archive symlink \"{}\" points to an absolute path \"{}\"", l.entry, l.target));
  Parts stack(l.where.begin(), l.where.end() - 1);
  Parts comps;
  std::size_t i = 0;
  while (i <= l.target.size()) {
    std::size_t j = l.target.find('/', i);
    if (j == std::string::npos) j = l.target.size();
    std::string c = l.target.substr(i, j - i);
    if (!c.empty() && c != ".") comps.push_back(std::move(c));
    i = j + 1;
  }
  for (std::size_t k = 0; k < comps.size(); ++k) {
    if (comps[k] == "..") {
      if (stack.empty())
        return fail(ErrorType::bad_request,
                    fmt::format("archive symlink \"{}\" points outside the folder (\"{}\")", l.entry, l.target));
      stack.pop_back();
      continue;
    }
    stack.push_back(comps[k]);
    if (k + 1 < comps.size() && links.count(join(stack, stack.size())))
      return fail(ErrorType::bad_request,
                  fmt::format("archive symlink \"{}\" resolves through another symlink (\"{}\")", l.entry, l.target));
  }
  return {};
}

class Extractor {
 public:
  Extractor(int root, const ExtractLimits& limits) : root_(root), limits_(limits) {}

  Expected<void> entry(archive* a, archive_entry* e) {
    if (++entries_ > limits_.max_entries)
      return fail(ErrorType::payload_too_large,
                  fmt::format("archive has more than {} entries (the limit)", limits_.max_entries));
    const char* raw = archive_entry_pathname(e);
    if (!raw) raw = archive_entry_pathname_utf8(e);
    if (!raw) return fail(ErrorType::bad_request, "archive entry without a readable path");
    std::string name = raw;
    auto parts = safe_parts(name, "entry");
    if (!parts) return tl::unexpected(parts.error());

    if (const char* hl = archive_entry_hardlink(e)) return hardlink(*parts, hl, name);
    const mode_t type = archive_entry_filetype(e);
    if (parts->empty()) {
      if (type == AE_IFDIR) return {};  // "./" itself
      return fail(ErrorType::bad_request, fmt::format("archive entry \"{}\" names the folder itself", name));
    }
    switch (type) {
      case AE_IFDIR: return directory(*parts, archive_entry_perm(e), name);
      case AE_IFREG: return file(a, *parts, archive_entry_perm(e), name);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (!target) target = archive_entry_symlink_utf8(e);
        if (!target) return fail(ErrorType::bad_request, fmt::format("archive symlink \"{}\" has no target", name));
        // Created after every other entry so no write can go through a link.
        links_.push_back({*parts, target, name});
        return {};
      }
      default:
        return fail(ErrorType::bad_request,
                    fmt::format("archive entry \"{}\" is a device, FIFO or socket; only files, folders and "
                                "links are allowed",
                                name));
    }
  }

  Expected<void> finish() {
    std::set<std::string> link_paths;
    for (const auto& l : links_) link_paths.insert(join(l.where, l.where.size()));
    for (const auto& l : links_) {
      if (auto r = check_link_target(l, link_paths); !r) return r;
      auto dir = open_dir(root_, l.where, l.where.size() - 1, l.entry);
      if (!dir) return tl::unexpected(dir.error());
      if (::symlinkat(l.target.c_str(), dir->get(), l.where.back().c_str()) != 0)
        return fail(ErrorType::bad_request,
                    fmt::format("archive symlink \"{}\": cannot create it: {}", l.entry, errno_text(errno)));
    }
    return {};
  }

 private:
  Expected<void> directory(const Parts& parts, mode_t perm, const std::string& name) {
    auto dir = open_dir(root_, parts, parts.size(), name);
    if (!dir) return tl::unexpected(dir.error());
    // Keep the folder usable by its owner; never setuid/setgid/sticky.
    ::fchmod(dir->get(), (perm & 0755) | 0700);
    return {};
  }

  Expected<void> file(archive* a, const Parts& parts, mode_t perm, const std::string& name) {
    auto dir = open_dir(root_, parts, parts.size() - 1, name);
    if (!dir) return tl::unexpected(dir.error());
    Fd out(::openat(dir->get(), parts.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out)
      return fail(ErrorType::bad_request,
                  fmt::format("archive entry \"{}\": cannot create the file: {}", name, errno_text(errno)));
    // Count what is actually decompressed, not what the header claims.
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      int rc = archive_read_data_block(a, &buf, &size, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN)
        return fail(ErrorType::bad_request, fmt::format("archive entry \"{}\": {}", name, error_text(a)));
      total_ += size;
      if (total_ > limits_.max_total_bytes)
        return fail(ErrorType::payload_too_large,
                    fmt::format("archive unpacks to more than {} bytes (the limit)", limits_.max_total_bytes));
      // Sparse files: data blocks come with offsets; honour them.
      if (::lseek(out.get(), static_cast<off_t>(offset), SEEK_SET) < 0)
        return fail(ErrorType::internal, fmt::format("archive entry \"{}\": seek: {}", name, errno_text(errno)));
      if (auto r = write_all(out.get(), static_cast<const char*>(buf), size, name); !r) return r;
    }
    // Keep read and exec bits, owner can always read and write; never setuid/setgid/sticky.
    ::fchmod(out.get(), (perm & 0755) | 0600);
    files_.insert(join(parts, parts.size()));
    return {};
  }

  Expected<void> hardlink(const Parts& parts, const std::string& target, const std::string& name) {
    auto tparts = safe_parts(target, "hard link target");
    if (!tparts) return tl::unexpected(tparts.error());
    if (parts.empty() || tparts->empty() || !files_.count(join(*tparts, tparts->size())))
      return fail(ErrorType::bad_request, fmt::format("archive hard link \"{}\" must point to a file earlier in the "
                                                      "archive, not \"{}\"",
                                                      name, target));
    auto from = open_dir(root_, *tparts, tparts->size() - 1, name);
    if (!from) return tl::unexpected(from.error());
    auto to = open_dir(root_, parts, parts.size() - 1, name);
    if (!to) return tl::unexpected(to.error());
    // No AT_SYMLINK_FOLLOW: links are never followed.
    if (::linkat(from->get(), tparts->back().c_str(), to->get(), parts.back().c_str(), 0) != 0)
      return fail(ErrorType::bad_request,
                  fmt::format("archive hard link \"{}\": cannot create it: {}", name, errno_text(errno)));
    files_.insert(join(parts, parts.size()));
    return {};
  }

  int root_;
  const ExtractLimits& limits_;
  std::uint64_t entries_ = 0;
  std::uint64_t total_ = 0;
  std::set<std::string> files_;  // regular files written, for hard links
  std::vector<PendingLink> links_;
};

// --- packing ---------------------------------------------------------------

struct WriteArchive {
  archive* a = archive_write_new();
  ~WriteArchive() { archive_write_free(a); }
};

struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t append_to_string(archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

bool skipped(const fs::path& rel) {
  std::string prev;
  for (const auto& part : rel) {
    std::string p = part.string();
    if (p == ".git") return true;
    if (p == ".cache" && prev == "node_modules") return true;
    prev = p;
  }
  return false;
}

// A relative symlink that, resolved lexically from its folder, stays inside.
bool link_inside(const fs::path& rel_link, const std::string& target) {
  if (target.empty() || target.front() == '/') return false;
  int depth = 0;
  for (const auto& part : rel_link.parent_path()) {
    if (part != "." && !part.empty()) ++depth;
  }
  for (const auto& part : fs::path(target)) {
    if (part == "..") {
      if (--depth < 0) return false;
    } else if (part != "." && !part.empty()) {
      ++depth;
    }
  }
  return true;
}

}  // namespace

Expected<void> extract_tar_gz(std::string_view data, const std::string& dest_dir, const ExtractLimits& limits) {
  Fd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return fail(ErrorType::internal, fmt::format("extract into {}: {}", dest_dir, errno_text(errno)));
  std::error_code ec;
  if (!fs::is_empty(dest_dir, ec) || ec)
    return fail(ErrorType::internal, fmt::format("extract into {}: the folder must be empty", dest_dir));

  ReadArchive r;
  archive_read_support_filter_gzip(r.a);
  archive_read_support_format_tar(r.a);
  if (archive_read_open_memory(r.a, data.data(), data.size()) != ARCHIVE_OK)
    return fail(ErrorType::bad_request, fmt::format("not a tar.gz archive: {}", error_text(r.a)));
  // libarchive reads a plain tar too; a deploy is a tar.gz (DESIGN.md §4).
  if (archive_filter_code(r.a, 0) != ARCHIVE_FILTER_GZIP)
    return fail(ErrorType::bad_request, "not a tar.gz archive: the body is not gzip-compressed");

  Extractor x(root.get(), limits);
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(r.a, &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN)
      return fail(ErrorType::bad_request, fmt::format("malformed tar.gz archive: {}", error_text(r.a)));
    if (auto res = x.entry(r.a, e); !res) return res;
  }
  return x.finish();
}

Expected<std::string> create_tar_gz(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fail(ErrorType::bad_request, fmt::format("{} is not a folder", dir));

  std::vector<fs::path> paths;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return fail(ErrorType::internal, fmt::format("cannot read {}: {}", dir, ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) return fail(ErrorType::internal, fmt::format("cannot read {}: {}", dir, ec.message()));
    // lexically: fs::relative would follow a symlink to its target.
    fs::path rel = it->path().lexically_relative(dir);
    if (skipped(rel)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    paths.push_back(rel);
  }
  std::sort(paths.begin(), paths.end());  // the same folder gives the same archive

  std::string out;
  WriteArchive w;
  archive_write_add_filter_gzip(w.a);
  archive_write_set_format_pax_restricted(w.a);
  if (archive_write_open(w.a, &out, nullptr, append_to_string, nullptr) != ARCHIVE_OK)
    return fail(ErrorType::internal, fmt::format("tar.gz: {}", error_text(w.a)));

  std::vector<char> buf(64 * 1024);
  for (const fs::path& rel : paths) {
    fs::path full = fs::path(dir) / rel;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0)
      return fail(ErrorType::internal, fmt::format("cannot stat {}: {}", full.string(), errno_text(errno)));
    std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_mtime(e.get(), st.st_mtime, 0);
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
      archive_entry_set_perm(e.get(), st.st_mode & 0755);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target = fs::read_symlink(full, ec).string();
      if (ec || !link_inside(rel, target)) continue;  // only relative links that stay inside
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_perm(e.get(), 0777);
      archive_entry_set_symlink(e.get(), target.c_str());
    } else if (S_ISREG(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), st.st_mode & 0755);
      archive_entry_set_size(e.get(), st.st_size);
    } else {
      continue;  // sockets, FIFOs, devices have no place in a deploy
    }
    if (archive_write_header(w.a, e.get()) != ARCHIVE_OK)
      return fail(ErrorType::internal, fmt::format("tar.gz {}: {}", rel.string(), error_text(w.a)));
    if (S_ISREG(st.st_mode)) {
      Fd in(::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!in) return fail(ErrorType::internal, fmt::format("cannot read {}: {}", full.string(), errno_text(errno)));
      std::int64_t left = st.st_size;  // the header promised this many bytes
      while (left > 0) {
        ssize_t n = ::read(in.get(), buf.data(), std::min<std::size_t>(buf.size(), static_cast<std::size_t>(left)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
          return fail(ErrorType::internal, fmt::format("{} changed while it was packed", full.string()));
        if (archive_write_data(w.a, buf.data(), static_cast<std::size_t>(n)) < 0)
          return fail(ErrorType::internal, fmt::format("tar.gz {}: {}", rel.string(), error_text(w.a)));
        left -= n;
      }
    }
  }
  if (archive_write_close(w.a) != ARCHIVE_OK)
    return fail(ErrorType::internal, fmt::format("tar.gz: {}", error_text(w.a)));
  return out;
}

}  // namespace aifn::functions
