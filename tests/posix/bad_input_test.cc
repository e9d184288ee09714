// Bad input to mkfs.nosyncfs and nosyncfs: every error exit the contract
// names gives status 1, a one-line message that says what is wrong, and
// leaves nothing mounted and nothing destroyed.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/crc32c.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr size_t kSuperblockSize = 4096;
constexpr size_t kVersionOffset = 8;
constexpr size_t kBlockSizeOffset = 12;
constexpr size_t kUuidOffset = 16;
constexpr size_t kCrcOffset = 4092;

std::string ReadSuperblock(const std::string& image) {
  Fd fd = MustOpen(image, O_RDONLY);
  std::string sb = MustPread(fd.get(), kSuperblockSize, 0);
  REQUIRE(sb.size() == kSuperblockSize);
  return sb;
}

void WriteSuperblock(const std::string& image, const std::string& sb) {
  Fd fd = MustOpen(image, O_WRONLY);
  MustPwrite(fd.get(), sb, 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
}

uint32_t GetBe32(const std::string& sb, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(sb.data() + off);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void PutBe32(std::string* sb, size_t off, uint32_t v) {
  (*sb)[off] = static_cast<char>(v >> 24);
  (*sb)[off + 1] = static_cast<char>(v >> 16);
  (*sb)[off + 2] = static_cast<char>(v >> 8);
  (*sb)[off + 3] = static_cast<char>(v);
}

void FixCrc(std::string* sb) { PutBe32(sb, kCrcOffset, Crc32c(sb->data(), kCrcOffset)); }

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool ContainsIgnoringCase(const std::string& text, const std::string& part) {
  return Lower(text).find(Lower(part)) != std::string::npos;
}

size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

// Mounting `image` on `mountpoint` (with extra arguments) must fail, both in
// the foreground (-f) and when daemonizing, with status 1 and a message on
// stderr that contains `expected`; nothing may be mounted afterwards.
void ExpectMountFails(const std::string& image, const std::string& mountpoint,
                      const std::vector<std::string>& extra, const std::string& expected) {
  for (bool foreground : {true, false}) {
    std::vector<std::string> args = {image, mountpoint};
    if (foreground) args.push_back("-f");
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = TestVolume::RunDaemon(args, std::chrono::seconds(30));
    INFO((foreground ? "nosyncfs -f: " : "nosyncfs (daemonizing): ") << r.Describe());
    CHECK(r.exit_status == 1);
    CHECK(ContainsIgnoringCase(r.err, expected));
    if (!foreground) {
      // The contract: one line, "nosyncfs: ...".
      CHECK(Lines(r.err) == 1);
      CHECK(r.err.rfind("nosyncfs: ", 0) == 0);
    }
    CHECK_FALSE(IsMounted(mountpoint));
    if (IsMounted(mountpoint)) ForceUnmount(mountpoint);
  }
}

// mkfs must fail with status 1 and a one-line message containing `expected`
// (any message when `expected` is empty).
void ExpectMkfsFails(const std::vector<std::string>& args, const std::string& expected) {
  CommandResult r = TestVolume::RunMkfs(args);
  INFO("mkfs.nosyncfs: " << r.Describe());
  CHECK(r.exit_status == 1);
  CHECK(Lines(r.err) == 1);
  if (!expected.empty()) CHECK(ContainsIgnoringCase(r.err, expected));
}

// The image mounts and holds `file` with `content` (checked through the
// fixture, which unmounts again).
void ExpectMountable(TestVolume& vol, const std::string& file, const std::string& content) {
  vol.Mount();
  CHECK(ReadFile(vol.Path(file)) == content);
  vol.Unmount();
}

// A volume whose image is left as zeros.
TestVolume::Options Unformatted() {
  TestVolume::Options o;
  o.format = false;
  return o;
}

TEST_CASE("mkfs formats an image and prints a summary", "[posix][badinput][mkfs]") {
  TestVolume vol;  // formats dir()/image with -s 64M
  std::string path = vol.TempPath("fresh.img");
  CommandResult r = TestVolume::RunMkfs({"-s", "64M", path});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK_FALSE(r.out.empty());
  CHECK(MustStat(path).st_size == 64 << 20);
  std::string sb = ReadSuperblock(path);
  CHECK(sb.substr(0, 8) == "NOSYNCFS");
  CHECK(GetBe32(sb, kVersionOffset) == 1);
  CHECK(GetBe32(sb, kBlockSizeOffset) == 4096);
  CHECK(GetBe32(sb, kCrcOffset) == Crc32c(sb.data(), kCrcOffset));
  CHECK(S_ISDIR(MustStat(path + ".meta").st_mode));

  // Two file systems get different uuids.
  std::string other = ReadSuperblock(vol.image());
  CHECK(other.substr(kUuidOffset, 16) != sb.substr(kUuidOffset, 16));
  CHECK(sb.substr(kUuidOffset, 16) != std::string(16, '\0'));

  // An existing file of the right size is formatted in place without -s.
  std::string sized = vol.TempPath("sized.img");
  {
    Fd fd = MustOpen(sized, O_CREAT | O_WRONLY, 0644);
    REQUIRE(ErrnoOf(::ftruncate(fd.get(), 32 << 20)) == 0);
  }
  r = TestVolume::RunMkfs({sized});
  INFO(r.Describe());
  CHECK(r.exit_status == 0);
  CHECK(MustStat(sized).st_size == 32 << 20);
  CHECK(ReadSuperblock(sized).substr(0, 8) == "NOSYNCFS");
}

TEST_CASE("mkfs refuses an image that already holds nosyncfs unless forced",
          "[posix][badinput][mkfs]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("precious"), "do not lose me");
  vol.Unmount();
  std::string sb_before = ReadSuperblock(vol.image());

  ExpectMkfsFails({vol.image()}, "already");
  ExpectMkfsFails({"-s", "64M", vol.image()}, "already");
  CHECK(ReadSuperblock(vol.image()) == sb_before);
  ExpectMountable(vol, "precious", "do not lose me");

  CommandResult r = TestVolume::RunMkfs({"-f", vol.image()});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  std::string sb_after = ReadSuperblock(vol.image());
  CHECK(sb_after.substr(0, 8) == "NOSYNCFS");
  CHECK(sb_after.substr(kUuidOffset, 16) != sb_before.substr(kUuidOffset, 16));
  vol.Mount();
  CHECK(ListDir(vol.Path("")).empty());
  vol.Unmount();
}

TEST_CASE("mkfs refuses a device smaller than 16 MiB", "[posix][badinput][mkfs]") {
  TestVolume vol;
  ExpectMkfsFails({"-s", "8M", vol.TempPath("small.img")}, "too small");
  ExpectMkfsFails({"-s", "16380K", vol.TempPath("almost.img")}, "too small");
  // An existing file that is too small.
  std::string tiny = vol.TempPath("tiny.img");
  {
    Fd fd = MustOpen(tiny, O_CREAT | O_WRONLY, 0644);
    REQUIRE(ErrnoOf(::ftruncate(fd.get(), 1 << 20)) == 0);
  }
  ExpectMkfsFails({tiny}, "too small");
  CHECK(ReadSuperblock(tiny) == std::string(kSuperblockSize, '\0'));

  // Exactly 16 MiB is enough, and it mounts and works.
  TestVolume::Options opt;
  opt.image_bytes = 16 << 20;
  TestVolume small(opt);
  small.Mount();
  WriteFile(small.Path("f"), Pattern(1, 100000, 0));
  CHECK(ReadFile(small.Path("f")) == Pattern(1, 100000, 0));
  small.Unmount();
}

TEST_CASE("mkfs refuses a bad block size", "[posix][badinput][mkfs]") {
  TestVolume vol;
  for (const char* bad : {"3000", "0", "100", "4097", "abc"}) {
    INFO("block size " << bad);
    std::string image = vol.TempPath(std::string("bs-") + bad + ".img");
    ExpectMkfsFails({"-b", bad, "-s", "64M", image}, "");
    struct stat st {};
    if (::stat(image.c_str(), &st) == 0 && st.st_size >= static_cast<off_t>(kSuperblockSize)) {
      CHECK(ReadSuperblock(image).substr(0, 8) != "NOSYNCFS");
    }
  }
}

TEST_CASE("mkfs with a metadata directory and mount with meta=", "[posix][badinput][mkfs]") {
  TestVolume vol(Unformatted());
  std::string meta = vol.TempPath("custom-meta");
  CommandResult r = TestVolume::RunMkfs({"-m", meta, vol.image()});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(S_ISDIR(MustStat(meta).st_mode));
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.meta_dir().c_str(), &st)) == ENOENT);

  // The superblock names the store, so no option is needed to mount.
  vol.Mount();
  WriteFile(vol.Path("f"), "custom meta");
  vol.Unmount();
  vol.Mount("emulate=strict,meta=" + meta);
  CHECK(ReadFile(vol.Path("f")) == "custom meta");
  vol.Unmount();

  // Moved away: the store is missing, unless meta= says where it went.
  std::string moved = vol.TempPath("moved-meta");
  REQUIRE(ErrnoOf(::rename(meta.c_str(), moved.c_str())) == 0);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "metadata");
  vol.Mount("emulate=strict,meta=" + moved);
  CHECK(ReadFile(vol.Path("f")) == "custom meta");
  vol.Unmount();
  REQUIRE(ErrnoOf(::rename(moved.c_str(), meta.c_str())) == 0);
  ExpectMountable(vol, "f", "custom meta");
}

TEST_CASE("mount refuses an unformatted or foreign device", "[posix][badinput][mount]") {
  TestVolume vol(Unformatted());  // 64 MiB of zeros
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "not a nosyncfs");

  // Something else's superblock (an ext4-like magic at its usual place).
  std::string foreign(kSuperblockSize, '\0');
  foreign[1080] = '\x53';
  foreign[1081] = '\xef';
  for (size_t i = 0; i < 1024; ++i) foreign[i] = PatternByte(9, i);
  WriteSuperblock(vol.image(), foreign);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "not a nosyncfs");

  // Almost our magic.
  std::string near(kSuperblockSize, '\0');
  near.replace(0, 8, "NOSYNCFZ");
  WriteSuperblock(vol.image(), near);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "not a nosyncfs");

  // A file too short to hold a superblock, and a missing one: still a clean
  // error exit (the contract names no message for these).
  std::string tiny = vol.TempPath("tiny.img");
  WriteFile(tiny, "NOSYNCFS");
  for (const std::string& dev : {tiny, vol.TempPath("does-not-exist.img")}) {
    CommandResult r = TestVolume::RunDaemon({dev, vol.mountpoint()}, std::chrono::seconds(30));
    INFO(dev << ": " << r.Describe());
    CHECK(r.exit_status == 1);
    CHECK(Lines(r.err) == 1);
    CHECK_FALSE(IsMounted(vol.mountpoint()));
  }
}

TEST_CASE("mount refuses a superblock with a bad checksum", "[posix][badinput][mount]") {
  TestVolume vol;
  std::string good = ReadSuperblock(vol.image());

  std::string bad = good;
  bad[kUuidOffset] = static_cast<char>(bad[kUuidOffset] ^ 0x01);  // CRC left stale
  WriteSuperblock(vol.image(), bad);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "checksum");

  bad = good;
  bad[kCrcOffset + 3] = static_cast<char>(bad[kCrcOffset + 3] ^ 0x80);  // the CRC itself
  WriteSuperblock(vol.image(), bad);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "checksum");

  // The failed attempts changed nothing: the original mounts.
  WriteSuperblock(vol.image(), good);
  vol.Mount();
  vol.Unmount();
}

TEST_CASE("mount refuses an unsupported format version", "[posix][badinput][mount]") {
  TestVolume vol;
  std::string good = ReadSuperblock(vol.image());
  REQUIRE(GetBe32(good, kVersionOffset) == 1);
  for (uint32_t version : {2u, 0u, 0x01000000u}) {
    INFO("version " << version);
    std::string sb = good;
    PutBe32(&sb, kVersionOffset, version);
    FixCrc(&sb);  // a valid checksum, so that the version check is what fails
    WriteSuperblock(vol.image(), sb);
    ExpectMountFails(vol.image(), vol.mountpoint(), {}, "version");
  }
  WriteSuperblock(vol.image(), good);
  vol.Mount();
  vol.Unmount();
}

TEST_CASE("mount refuses a metadata directory under its own mount point",
          "[posix][badinput][mount]") {
  TestVolume vol;
  // The store would open files of the mount it serves (and hang on them
  // should the daemon die): refused, however the path is spelled.
  const std::string inside = vol.mountpoint() + "/../mnt/meta";
  REQUIRE(TestVolume::RunMkfs({"-s", "64M", "-f", "-m", inside, vol.image()}).exit_status == 0);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "inside the mount point");
  ExpectMountFails(vol.image(), vol.mountpoint(), {"-o", "meta=" + vol.mountpoint() + "//meta"},
                   "inside the mount point");
}

TEST_CASE("mount refuses a missing mount point", "[posix][badinput][mount]") {
  TestVolume vol;
  std::string missing = vol.TempPath("no-such-dir");
  ExpectMountFails(vol.image(), missing, {}, "mount point");
  struct stat st {};
  CHECK(ErrnoOf(::stat(missing.c_str(), &st)) == ENOENT);
  ExpectMountFails(vol.image(), vol.TempPath("no-such-dir/deeper"), {}, "mount point");
}

TEST_CASE("mount refuses a device that another process holds", "[posix][badinput][mount]") {
  TestVolume vol;
  // Not a mount: someone else (mkfs, fsck, a tool) has the device locked.
  Fd holder = MustOpen(vol.image(), O_RDWR);
  REQUIRE(ErrnoOf(::flock(holder.get(), LOCK_EX | LOCK_NB)) == 0);
  ExpectMountFails(vol.image(), vol.mountpoint(), {"-o", "lock_wait=0"}, "in use");
  ExpectMountFails(vol.image(), vol.mountpoint(), {"-o", "emulate=none,lock_wait=0"}, "in use");
  // By default it waits for the lock first (a daemon may be shutting down),
  // then gives up with the same error, in one line that says how long it
  // waited.
  {
    auto start = std::chrono::steady_clock::now();
    CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", "lock_wait=1"},
                                            std::chrono::seconds(30));
    INFO(r.Describe());
    CHECK(r.exit_status == 1);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::seconds(1));
    CHECK(Lines(r.err) == 1);
    CHECK(ContainsIgnoringCase(r.err, "in use"));
    CHECK(ContainsIgnoringCase(r.err, "waited 1 s"));
  }
  CHECK(MountedFsType(vol.mountpoint()) == std::nullopt);
  holder = Fd();
  vol.Mount();
  // Mounting again on the mount point itself is refused; the mount is unharmed.
  WriteFile(vol.Path("f"), "first mount");
  CommandResult again = TestVolume::RunDaemon({vol.image(), vol.mountpoint()});
  INFO(again.Describe());
  CHECK(again.exit_status == 1);
  CHECK(ContainsIgnoringCase(again.err, "already mounted on"));
  CHECK(Lines(again.err) == 1);
  CHECK(ReadFile(vol.Path("f")) == "first mount");
  vol.Remount();
  CHECK(ReadFile(vol.Path("f")) == "first mount");
}

TEST_CASE("mount refuses a missing metadata store", "[posix][badinput][mount]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "kept");
  vol.Unmount();

  std::string moved = vol.TempPath("moved-meta");
  REQUIRE(ErrnoOf(::rename(vol.meta_dir().c_str(), moved.c_str())) == 0);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "metadata");
  ExpectMountFails(vol.image(), vol.mountpoint(), {"-o", "meta=" + vol.TempPath("nowhere")},
                   "metadata");
  // A failed mount must not create an empty store in its place.
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.meta_dir().c_str(), &st)) == ENOENT);

  REQUIRE(ErrnoOf(::rename(moved.c_str(), vol.meta_dir().c_str())) == 0);
  ExpectMountable(vol, "f", "kept");
  // meta= pointing at the right store works too.
  vol.Mount("emulate=strict,meta=" + vol.meta_dir());
  CHECK(ReadFile(vol.Path("f")) == "kept");
  vol.Unmount();
}

TEST_CASE("mount refuses the metadata store of another device", "[posix][badinput][mount]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "mine");
  vol.Unmount();
  std::string other = vol.TempPath("other.img");
  CommandResult r = TestVolume::RunMkfs({"-s", "64M", other});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);

  ExpectMountFails(vol.image(), vol.mountpoint(), {"-o", "meta=" + other + ".meta"},
                   "belongs to another device");
  ExpectMountFails(other, vol.mountpoint(), {"-o", "meta=" + vol.meta_dir()},
                   "belongs to another device");
  // Swapped stores (each at the other's default place).
  std::string tmp = vol.TempPath("swap");
  REQUIRE(ErrnoOf(::rename(vol.meta_dir().c_str(), tmp.c_str())) == 0);
  REQUIRE(ErrnoOf(::rename((other + ".meta").c_str(), vol.meta_dir().c_str())) == 0);
  ExpectMountFails(vol.image(), vol.mountpoint(), {}, "belongs to another device");
  REQUIRE(ErrnoOf(::rename(vol.meta_dir().c_str(), (other + ".meta").c_str())) == 0);
  REQUIRE(ErrnoOf(::rename(tmp.c_str(), vol.meta_dir().c_str())) == 0);

  // Nothing was damaged by the attempts.
  ExpectMountable(vol, "f", "mine");
}

}  // namespace
}  // namespace nosyncfs::test
