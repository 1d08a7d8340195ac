#include "functions/archive.h"

#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace aifn::functions {
namespace {

namespace fs = std::filesystem;

// A scratch folder: `root/dest` is where archives are extracted, so anything
// that appears in `root` beside it escaped.
class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aifn-archive-XXXXXX").string();
    root_ = mkdtemp(tmpl.data());
    dest_ = root_ / "dest";
    fs::create_directory(dest_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Everything in root_ other than dest_.
  std::vector<std::string> outside() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(root_))
      if (e.path() != dest_) out.push_back(e.path().filename().string());
    return out;
  }

  fs::path root_, dest_;
};

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// Builds a tar.gz in memory entry by entry, as an attacker would.
class TarBuilder {
 public:
  TarBuilder() {
    archive_write_add_filter_gzip(a_);
    archive_write_set_format_pax_restricted(a_);
    archive_write_open(a_, &out_, nullptr, &TarBuilder::append, nullptr);
  }
  ~TarBuilder() { archive_write_free(a_); }

  TarBuilder& file(const std::string& path, const std::string& data, int perm = 0644) {
    archive_entry* e = entry(path, AE_IFREG, perm);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a_, e);
    archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& dir(const std::string& path) { return simple(path, AE_IFDIR, 0755); }
  TarBuilder& fifo(const std::string& path) { return simple(path, AE_IFIFO, 0644); }
  TarBuilder& symlink(const std::string& path, const std::string& target) {
    archive_entry* e = entry(path, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target.c_str());
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& hardlink(const std::string& path, const std::string& target) {
    archive_entry* e = entry(path, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target.c_str());
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  std::string done() {
    archive_write_close(a_);
    return out_;
  }

 private:
  static la_ssize_t append(archive*, void* client, const void* buf, size_t n) {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive_entry* entry(const std::string& path, unsigned type, int perm) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, static_cast<mode_t>(perm));
    return e;
  }
  TarBuilder& simple(const std::string& path, unsigned type, int perm) {
    archive_entry* e = entry(path, type, perm);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }

  archive* a_ = archive_write_new();
  std::string out_;
};

void expect_refused(const Expected<void>& r, ErrorType type, const std::string& fragment) {
  ASSERT_FALSE(r) << "archive was accepted";
  EXPECT_EQ(r.error().type, type) << r.error().message;
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST_F(ArchiveTest, FolderRoundTrips) {
  fs::path src = root_ / "src";
  write(src / "function.toml", "runtime = \"node\"\n");
  write(src / "lib" / "util.js", "module.exports = 1;\n");
  write(src / "run.sh", "#!/bin/sh\n");
  fs::permissions(src / "run.sh", fs::perms(0755));
  write(src / "empty", "");
  fs::create_directories(src / "emptydir");
  fs::create_symlink("lib/util.js", src / "alias.js");
  fs::create_symlink("/etc/passwd", src / "outside");  // not packed
  write(src / ".git" / "HEAD", "ref");                  // not packed
  write(src / "node_modules" / ".cache" / "x", "big");  // not packed
  write(src / "node_modules" / "dep" / "index.js", "1");
  std::string big(300'000, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  write(src / "big.bin", big);

  auto tgz = create_tar_gz(src.string());
  ASSERT_TRUE(tgz) << tgz.error().message;
  auto r = extract_tar_gz(*tgz, dest_.string());
  ASSERT_TRUE(r) << r.error().message;

  EXPECT_EQ(read(dest_ / "function.toml"), "runtime = \"node\"\n");
  EXPECT_EQ(read(dest_ / "lib" / "util.js"), "module.exports = 1;\n");
  EXPECT_EQ(read(dest_ / "big.bin"), big);
  EXPECT_EQ(read(dest_ / "empty"), "");
  EXPECT_TRUE(fs::is_directory(dest_ / "emptydir"));
  EXPECT_EQ(read(dest_ / "node_modules" / "dep" / "index.js"), "1");
  EXPECT_TRUE(fs::is_symlink(dest_ / "alias.js"));
  EXPECT_EQ(fs::read_symlink(dest_ / "alias.js"), "lib/util.js");
  EXPECT_FALSE(fs::exists(dest_ / "outside"));
  EXPECT_FALSE(fs::exists(dest_ / ".git"));
  EXPECT_FALSE(fs::exists(dest_ / "node_modules" / ".cache"));
  EXPECT_NE(fs::status(dest_ / "run.sh").permissions() & fs::perms::owner_exec, fs::perms::none);
  EXPECT_EQ(fs::status(dest_ / "function.toml").permissions() & fs::perms::owner_exec, fs::perms::none);
}

TEST_F(ArchiveTest, SetuidBitsAreDroppedExecBitKept) {
  auto r = extract_tar_gz(TarBuilder().file("tool", "x", 06755).file("ro", "y", 0400).done(), dest_.string());
  ASSERT_TRUE(r) << r.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dest_ / "tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((dest_ / "ro").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ArchiveTest, ParentFoldersAreCreated) {
  auto r = extract_tar_gz(TarBuilder().file("./a/b/c.txt", "deep").done(), dest_.string());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read(dest_ / "a" / "b" / "c.txt"), "deep");
}

TEST_F(ArchiveTest, AbsolutePathIsRefused) {
  std::string victim = (root_ / "victim").string();
  expect_refused(extract_tar_gz(TarBuilder().file(victim, "pwned").done(), dest_.string()), ErrorType::bad_request,
                 "absolute");
  EXPECT_TRUE(outside().empty());
}

TEST_F(ArchiveTest, DotDotEscapeIsRefused) {
  expect_refused(extract_tar_gz(TarBuilder().file("ok.txt", "fine").file("../victim", "pwned").done(), dest_.string()),
                 ErrorType::bad_request, "../victim");
  expect_refused(extract_tar_gz(TarBuilder().file("a/../../victim", "pwned").done(), (root_ / "dest2").string()),
                 ErrorType::internal, "dest2");  // dest2 does not exist: the caller's mistake
  EXPECT_TRUE(outside().empty());
}

TEST_F(ArchiveTest, SymlinkEscapeThenFileThroughItIsRefused) {
  // Classic: "link -> .." then "link/victim". Links are created last, so the
  // file goes into a real folder named link, and the link itself is refused.
  auto r = extract_tar_gz(TarBuilder().symlink("link", "..").file("link/victim", "pwned").done(), dest_.string());
  expect_refused(r, ErrorType::bad_request, "link");
  EXPECT_TRUE(outside().empty());
  EXPECT_FALSE(fs::exists(root_ / "victim"));
}

TEST_F(ArchiveTest, SymlinkToAbsoluteTargetIsRefused) {
  expect_refused(extract_tar_gz(TarBuilder().symlink("passwd", "/etc/passwd").done(), dest_.string()),
                 ErrorType::bad_request, "absolute");
  EXPECT_FALSE(fs::exists(dest_ / "passwd"));
}

TEST_F(ArchiveTest, SymlinkChainEscapeIsRefused) {
  // "b -> ." is harmless alone, but "a -> b/.." resolves through it to the
  // parent of dest although it looks like "." lexically.
  expect_refused(extract_tar_gz(TarBuilder().dir("d").symlink("d/b", ".").symlink("d/a", "b/../..").done(),
                                dest_.string()),
                 ErrorType::bad_request, "d/a");
}

TEST_F(ArchiveTest, InsideSymlinksAreKept) {
  auto r = extract_tar_gz(TarBuilder().file("lib/x.js", "1").symlink("bin/x", "../lib/x.js").done(), dest_.string());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read(dest_ / "bin" / "x"), "1");
}

TEST_F(ArchiveTest, HardlinksMustPointInside) {
  write(root_ / "secret", "s3cret");
  expect_refused(extract_tar_gz(TarBuilder().hardlink("h", "../secret").done(), dest_.string()),
                 ErrorType::bad_request, "..");
  fs::remove_all(dest_);
  fs::create_directory(dest_);
  expect_refused(extract_tar_gz(TarBuilder().hardlink("h", (root_ / "secret").string()).done(), dest_.string()),
                 ErrorType::bad_request, "absolute");
  fs::remove_all(dest_);
  fs::create_directory(dest_);
  auto r = extract_tar_gz(TarBuilder().file("a", "same").hardlink("b", "a").done(), dest_.string());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read(dest_ / "b"), "same");
}

TEST_F(ArchiveTest, FifoIsRefused) {
  expect_refused(extract_tar_gz(TarBuilder().fifo("pipe").done(), dest_.string()), ErrorType::bad_request, "pipe");
  EXPECT_FALSE(fs::exists(dest_ / "pipe"));
}

TEST_F(ArchiveTest, OversizedIsRefusedByBytesWritten) {
  std::string zeros(2 * 1024 * 1024, '\0');  // compresses to almost nothing
  ExtractLimits limits;
  limits.max_total_bytes = 1024 * 1024;
  auto r = extract_tar_gz(TarBuilder().file("bomb", zeros).done(), dest_.string(), limits);
  expect_refused(r, ErrorType::payload_too_large, "1048576");
  std::error_code ec;
  EXPECT_LE(fs::file_size(dest_ / "bomb", ec), limits.max_total_bytes + 64 * 1024);
}

TEST_F(ArchiveTest, TooManyEntriesIsRefused) {
  TarBuilder b;
  for (int i = 0; i < 20; ++i) b.file("f" + std::to_string(i), "x");
  ExtractLimits limits;
  limits.max_entries = 10;
  expect_refused(extract_tar_gz(b.done(), dest_.string(), limits), ErrorType::payload_too_large, "10");
}

TEST_F(ArchiveTest, GarbageIsBadRequest) {
  auto garbage = extract_tar_gz("this is not a tarball at all, not even close.....", dest_.string());
  expect_refused(garbage, ErrorType::bad_request, "");
  std::string noise(10'000, ' ');
  std::uint32_t x = 12345;
  for (char& c : noise) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  std::string tgz = TarBuilder().file("a", noise).done();  // cut in the middle of the data
  fs::remove_all(dest_);
  fs::create_directory(dest_);
  auto half = extract_tar_gz(tgz.substr(0, tgz.size() / 2), dest_.string());
  expect_refused(half, ErrorType::bad_request, "");
}

// Found by aifn_archive_fuzz: gzip members that hold no tar header, for which
// libarchive reports an error without a message.
TEST_F(ArchiveTest, EmptyGzipMembersAreBadRequestNotACrash) {
  const unsigned char crash[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x0e, 0x8b,
                                 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xed, 0x00};
  auto r = extract_tar_gz(std::string_view(reinterpret_cast<const char*>(crash), sizeof crash), dest_.string());
  expect_refused(r, ErrorType::bad_request, "");
}

TEST_F(ArchiveTest, DestinationMustBeEmpty) {
  write(dest_ / "existing", "x");
  auto r = extract_tar_gz(TarBuilder().file("a", "b").done(), dest_.string());
  ASSERT_FALSE(r);
}

TEST(CreateTarGz, MissingFolderIsAnError) { EXPECT_FALSE(create_tar_gz("/nonexistent/aifn-folder")); }

}  // namespace
}  // namespace aifn::functions
