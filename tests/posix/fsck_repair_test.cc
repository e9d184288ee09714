// fsck.nosyncfs as fsck(8) expects: each test section breaks the metadata
// of an unmounted volume in one way (records written straight into the
// store), then requires that fsck -n reports it (exit 4) and changes
// nothing, that -p (safe damage) or -y repairs it (exit 1, a "repaired:"
// line), that another fsck finds the volume clean (exit 0), and that the
// volume mounts and its surviving files read back. Also: the options and
// exit codes (-V, usage errors 16, operational errors 8, -C lines).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "journal/meta_store.h"
#include "journal/schema.h"
#include "journal/superblock.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

namespace fs = std::filesystem;

std::string FileBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The image and every file of its metadata store, hashed.
std::map<std::string, size_t> Snapshot(const TestVolume& v) {
  std::map<std::string, size_t> files;
  files[v.image()] = std::hash<std::string>()(FileBytes(v.image()));
  for (const auto& e : fs::recursive_directory_iterator(v.meta_dir())) {
    if (e.is_regular_file()) files[e.path().string()] = std::hash<std::string>()(FileBytes(e.path()));
  }
  return files;
}

CommandResult Fsck(const TestVolume& v, std::vector<std::string> args) {
  args.insert(args.begin(), BinPath("fsck.nosyncfs"));
  args.push_back(v.image());
  return RunCommand(args);
}

uint64_t DataBlocks(const std::string& image) {
  std::string block = FileBytes(image).substr(0, Superblock::kSize);
  auto sb = Superblock::Decode(block.data(), block.size(), fs::file_size(image));
  REQUIRE(sb.ok());
  return sb->data_blocks;
}

// The metadata store of an unmounted volume, for breaking it.
class Store {
 public:
  explicit Store(const TestVolume& v) {
    auto s = MetaStore::Open(v.meta_dir(), /*create=*/false);
    REQUIRE(s.ok());
    store_ = std::move(s).value();
  }
  ~Store() { (void)store_->Flush(); }

  InodeRecord Inode(uint64_t ino) {
    auto value = store_->Get(keys::Inode(ino));
    REQUIRE(value.ok());
    REQUIRE(value->has_value());
    auto rec = InodeRecord::Decode(ino, **value);
    REQUIRE(rec.ok());
    return *rec;
  }
  DirentRecord Entry(uint64_t dir, const std::string& name) {
    auto value = store_->Get(keys::Dirent(dir, name));
    REQUIRE(value.ok());
    REQUIRE(value->has_value());
    auto d = DirentRecord::Decode(**value);
    REQUIRE(d.ok());
    d->name = name;
    return *d;
  }
  // The first extent of `ino`.
  std::pair<std::string, Extent> FirstExtent(uint64_t ino) {
    std::pair<std::string, Extent> out;
    bool found = false;
    REQUIRE(store_->Scan(keys::ExtentPrefix(ino), "", [&](std::string_view k, std::string_view v) {
      auto e = DecodeExtent(k, v);
      REQUIRE(e.ok());
      out = {std::string(k), *e};
      found = true;
      return false;
    }).ok());
    REQUIRE(found);
    return out;
  }
  void Apply(const MetaBatch& b) {
    REQUIRE(store_->Apply(b).ok());
    REQUIRE(store_->Flush().ok());
  }
  void RemoveEntry(uint64_t dir, const std::string& name) {
    DirentRecord d = Entry(dir, name);
    MetaBatch b;
    b.Delete(keys::Dirent(dir, name));
    b.Delete(keys::Cookie(dir, d.cookie));
    Apply(b);
  }
  void PutInode(const InodeRecord& r) {
    MetaBatch b;
    b.Put(keys::Inode(r.ino), r.Encode());
    Apply(b);
  }

 private:
  std::unique_ptr<MetaStore> store_;
};

// A volume with files to damage and to read back afterwards.
struct Files {
  std::string keep = Pattern(71, 30000);
  std::string victim = Pattern(72, 20000);
  std::string inner = Pattern(73, 9000);
  uint64_t keep_ino = 0, victim_ino = 0, dir_ino = 0, inner_ino = 0;
};

Files Populate(TestVolume& v) {
  Files f;
  v.Mount();
  WriteFile(v.Path("keep"), f.keep);
  WriteFile(v.Path("victim"), f.victim);
  REQUIRE(ErrnoOf(mkdir(v.Path("d").c_str(), 0755)) == 0);
  WriteFile(v.Path("d/inner"), f.inner);
  f.keep_ino = MustStat(v.Path("keep")).st_ino;
  f.victim_ino = MustStat(v.Path("victim")).st_ino;
  f.dir_ino = MustStat(v.Path("d")).st_ino;
  f.inner_ino = MustStat(v.Path("d/inner")).st_ino;
  v.Unmount();
  return f;
}

// fsck -n reports `problem` (exit 4) and changes nothing; `flag` repairs
// it with a line containing `repair` (exit 1); a second fsck is clean.
void ExpectRepair(const TestVolume& v, const std::string& flag, const std::string& problem,
                  const std::string& repair) {
  const auto before = Snapshot(v);
  CommandResult n = Fsck(v, {"-n"});
  INFO("fsck -n: " << n.Describe() << "\n" << n.out);
  CHECK(n.exit_status == 4);
  CHECK(Contains(n.out, "problem: "));
  CHECK(Contains(n.out, problem));
  CHECK(Snapshot(v) == before);
  if (flag == "-y") {
    // Not safe without a human: -p leaves it, and says what would.
    CommandResult p = Fsck(v, {"-p"});
    INFO("fsck -p: " << p.Describe() << "\n" << p.out);
    CHECK(p.exit_status == 4);
    CHECK(Contains(p.err, "UNEXPECTED INCONSISTENCY; run fsck.nosyncfs -y " + v.image() + " manually"));
    CHECK(std::count(p.err.begin(), p.err.end(), '\n') == 1);
  }
  CommandResult r = Fsck(v, {flag});
  INFO("fsck " << flag << ": " << r.Describe() << "\n" << r.out);
  CHECK(r.exit_status == 1);
  CHECK(Contains(r.out, "repaired: " + repair));
  CHECK(Contains(r.out, ": clean"));
  CommandResult again = Fsck(v, {"-f"});
  INFO("second fsck: " << again.Describe() << "\n" << again.out);
  CHECK(again.exit_status == 0);
  CHECK(Contains(again.out, ": clean"));
  CHECK(Fsck(v, {"-n"}).exit_status == 0);
}

}  // namespace

TEST_CASE("fsck.nosyncfs -p repairs the safe kinds of damage", "[posix][fsck]") {
  TestVolume v;
  Files f = Populate(v);
  bool keep_victim = true;
  SECTION("leaked blocks: an extent of a missing inode") {
    const uint64_t block = DataBlocks(v.image()) - 8;
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Extent(999, 0), EncodeExtentValue({0, 2, block, 0}));
      s.Apply(b);
    }
    ExpectRepair(v, "-p", "of missing inode 999 (leaked blocks)",
                 "removed the extent at block 0 of inode 999, a missing inode (freed blocks " +
                     std::to_string(block) + ".." + std::to_string(block + 1) + ")");
  }
  SECTION("an orphan inode left by a crash") {
    {
      Store s(v);
      s.RemoveEntry(kRootIno, "victim");
      InodeRecord r = s.Inode(f.victim_ino);
      r.nlink = 0;
      s.PutInode(r);
      MetaBatch b;
      b.Put(keys::Orphan(f.victim_ino), "");
      s.Apply(b);
    }
    ExpectRepair(v, "-p", "1 orphan inode not freed yet",
                 "freed orphan inode " + std::to_string(f.victim_ino));
    keep_victim = false;
  }
  SECTION("an orphan record of a missing inode") {
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Orphan(4242), "");
      s.Apply(b);
    }
    ExpectRepair(v, "-p", "orphan record for missing inode 4242",
                 "dropped the orphan record of missing inode 4242");
  }
  SECTION("an orphan record of a file that entries still name") {
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Orphan(f.victim_ino), "");
      s.Apply(b);
    }
    ExpectRepair(v, "-p", "orphan record for inode " + std::to_string(f.victim_ino),
                 "dropped the orphan record of inode " + std::to_string(f.victim_ino));
  }
  SECTION("a mount drops both kinds of orphan record itself, and frees no linked file") {
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Orphan(4242), "");
      b.Put(keys::Orphan(f.victim_ino), "");
      s.Apply(b);
    }
    v.Mount();
    CHECK(ReadFile(v.Path("victim")) == f.victim);
    v.Unmount();
    const std::string log = v.DaemonLog();
    INFO(log);
    CHECK(Contains(log, "dropped the orphan record of inode 4242: no such inode"));
    CHECK(Contains(log, "dropped the orphan record of inode " + std::to_string(f.victim_ino) +
                            ": the inode is linked"));
    CommandResult again = Fsck(v, {"-n"});
    INFO("fsck -n: " << again.Describe() << "\n" << again.out);
    CHECK(again.exit_status == 0);
  }
  SECTION("a wrong link count") {
    {
      Store s(v);
      InodeRecord r = s.Inode(f.keep_ino);
      r.nlink = 3;
      s.PutInode(r);
    }
    ExpectRepair(v, "-p", "link count 3, found 1 entries",
                 "set the link count of inode " + std::to_string(f.keep_ino) + " to 1 (was 3)");
  }
  SECTION("a wrong link count of a directory") {
    {
      Store s(v);
      InodeRecord r = s.Inode(f.dir_ino);
      r.nlink = 7;
      s.PutInode(r);
    }
    ExpectRepair(v, "-p", "(directory): link count 7, found 2",
                 "set the link count of inode " + std::to_string(f.dir_ino) + " to 2 (was 7)");
  }
  SECTION("a wrong inode count") {
    {
      auto store = MetaStore::Open(v.meta_dir(), false);
      REQUIRE(store.ok());
      auto a = (*store)->Get(keys::kApplied);
      REQUIRE(a.ok());
      auto rec = AppliedRecord::Decode(**a);
      REQUIRE(rec.ok());
      rec->inode_count += 5;
      MetaBatch b;
      b.Put(keys::kApplied, rec->Encode());
      REQUIRE((*store)->Apply(b).ok());
      REQUIRE((*store)->Flush().ok());
    }
    ExpectRepair(v, "-p", "inode count 10, found 5 inodes", "set the inode count to 5 (was 10)");
  }
  SECTION("a reference count of blocks nothing maps") {
    const uint64_t block = DataBlocks(v.image()) - 8;
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Refcount(block), EncodeRefcountValue({{block, 2}, 2}));
      s.Apply(b);
    }
    ExpectRepair(v, "-p", "no file maps them (leaked)",
                 "rewrote the reference counts from the extents (0 records, were 1)");
  }
  v.Mount();
  CHECK(ReadFile(v.Path("keep")) == f.keep);
  CHECK(ReadFile(v.Path("d/inner")) == f.inner);
  if (keep_victim) {
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  } else {
    CHECK(OpenErrno(v.Path("victim"), O_RDONLY) == ENOENT);
  }
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("fsck.nosyncfs -y repairs entries, unreachable inodes and bad extents",
          "[posix][fsck]") {
  TestVolume v;
  Files f = Populate(v);
  SECTION("an entry pointing at a missing inode") {
    {
      Store s(v);
      InodeRecord root = s.Inode(kRootIno);
      DirentRecord ghost{99999, S_IFREG, root.next_cookie++, "ghost"};
      MetaBatch b;
      b.Put(keys::Dirent(kRootIno, "ghost"), ghost.Encode(false));
      b.Put(keys::Cookie(kRootIno, ghost.cookie), ghost.Encode(true));
      b.Put(keys::Inode(kRootIno), root.Encode());
      s.Apply(b);
    }
    ExpectRepair(v, "-y", "points to missing inode 99999",
                 "removed entry 'ghost' in directory 1, which pointed to missing inode 99999");
    v.Mount();
    CHECK(ListDir(v.mountpoint()).count("ghost") == 0);
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  }
  SECTION("an unreachable file goes to a new /lost+found") {
    {
      Store s(v);
      s.RemoveEntry(f.dir_ino, "inner");
    }
    const std::string name = "#" + std::to_string(f.inner_ino);
    ExpectRepair(v, "-y", "inode " + std::to_string(f.inner_ino) + " is unreachable",
                 "linked unreachable inode " + std::to_string(f.inner_ino) +
                     " into /lost+found as " + name);
    v.Mount();
    struct stat lf = MustStat(v.Path("lost+found"));
    CHECK(S_ISDIR(lf.st_mode));
    CHECK((lf.st_mode & 07777) == 0700);
    CHECK(lf.st_uid == 0);
    CHECK(lf.st_gid == 0);
    CHECK(lf.st_nlink == 2);
    CHECK(MustStat(v.mountpoint()).st_nlink == 4);  // ".", "..", d, lost+found
    CHECK(ListDir(v.Path("d")).empty());
    CHECK(ReadFile(v.Path("lost+found/" + name)) == f.inner);
    CHECK(MustStat(v.Path("lost+found/" + name)).st_nlink == 1);
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  }
  SECTION("an unreachable directory goes to /lost+found with what it holds") {
    {
      Store s(v);
      s.RemoveEntry(kRootIno, "d");
      InodeRecord root = s.Inode(kRootIno);
      --root.nlink;  // only the entry is gone, as if the rmdir half happened
      s.PutInode(root);
    }
    const std::string name = "#" + std::to_string(f.dir_ino);
    ExpectRepair(v, "-y", "inode " + std::to_string(f.dir_ino) + " is unreachable",
                 "linked unreachable inode " + std::to_string(f.dir_ino) +
                     " into /lost+found as " + name);
    v.Mount();
    CHECK(ReadFile(v.Path("lost+found/" + name + "/inner")) == f.inner);
    CHECK(MustStat(v.Path("lost+found")).st_nlink == 3);
    struct stat d = MustStat(v.Path("lost+found/" + name));
    CHECK(d.st_nlink == 2);
    // ".." of the moved directory is lost+found.
    CHECK(MustStat(v.Path("lost+found/" + name + "/..")).st_ino ==
          MustStat(v.Path("lost+found")).st_ino);
  }
  SECTION("an extent outside the data area is removed, the file keeps its size") {
    {
      Store s(v);
      auto [key, e] = s.FirstExtent(f.victim_ino);
      e.pblk = uint64_t{1} << 40;
      MetaBatch b;
      b.Put(key, EncodeExtentValue(e));
      s.Apply(b);
    }
    // A mount refuses such a volume.
    CommandResult mount = TestVolume::RunDaemon({v.image(), v.mountpoint()});
    CHECK(mount.exit_status != 0);
    CHECK_FALSE(IsMounted(v.mountpoint()));
    ExpectRepair(v, "-y", "lies outside the data area",
                 "removed the extent at block 0 of inode " + std::to_string(f.victim_ino) +
                     ", which lay outside the data area");
    v.Mount();
    CHECK(ReadFile(v.Path("victim")) == std::string(f.victim.size(), '\0'));
    CHECK(ReadFile(v.Path("keep")) == f.keep);
  }
  SECTION("an extent reaching past the data area is cut to it") {
    const uint64_t last = DataBlocks(v.image()) - 1;
    {
      Store s(v);
      MetaBatch b;
      // A second extent of victim, past its size: the last block and two
      // beyond the data area.
      b.Put(keys::Extent(f.victim_ino, 100), EncodeExtentValue({100, 3, last, 0}));
      s.Apply(b);
    }
    ExpectRepair(v, "-y", "extent at block 100 lies outside the data area",
                 "cut the extent at block 100 of inode " + std::to_string(f.victim_ino) +
                     " to the data area: 1 of 3 blocks kept");
    v.Mount();
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  }
  SECTION("a malformed extent record is removed") {
    {
      Store s(v);
      MetaBatch b;
      b.Put(keys::Extent(f.victim_ino, 100), "garbage");
      s.Apply(b);
    }
    ExpectRepair(v, "-y", "bad extent record",
                 "removed the malformed extent record of inode " + std::to_string(f.victim_ino));
    v.Mount();
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  }
  SECTION("unknown extent flags are cleared") {
    {
      Store s(v);
      auto [key, e] = s.FirstExtent(f.victim_ino);
      e.flags |= 0x40;
      MetaBatch b;
      b.Put(key, EncodeExtentValue(e));
      s.Apply(b);
    }
    ExpectRepair(v, "-y", "unknown extent flags", "cleared unknown flags of the extent at block 0");
    v.Mount();
    CHECK(ReadFile(v.Path("victim")) == f.victim);
  }
  if (v.mounted()) v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("fsck.nosyncfs: options and exit codes as fsck(8) expects", "[posix][fsck][badinput]") {
  TestVolume v;
  const std::string fsck = BinPath("fsck.nosyncfs");
  SECTION("-V prints the version and exits 0") {
    CommandResult r = RunCommand({fsck, "-V"});
    CHECK(r.exit_status == 0);
    CHECK(std::regex_match(r.out, std::regex("fsck\\.nosyncfs [0-9]+\\.[0-9]+\\.[0-9]+\n")));
    CHECK(RunCommand({fsck, "-V", v.image()}).exit_status == 0);
  }
  SECTION("usage errors exit 16 with the usage on stderr") {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"-x", v.image()},
                                               {"-n", "-y", v.image()},
                                               {"-ny", v.image()},
                                               {"-pn", v.image()},
                                               {"-a", "-y", v.image()},
                                               {"-C", "x", v.image()},
                                               {v.image(), v.image()},
                                               {"-p"},
                                               {}}) {
      std::vector<std::string> argv{fsck};
      argv.insert(argv.end(), args.begin(), args.end());
      CommandResult r = RunCommand(argv);
      INFO(r.Describe());
      CHECK(r.exit_status == 16);
      CHECK(Contains(r.err, "usage: fsck.nosyncfs"));
      CHECK(r.out.empty());
    }
  }
  SECTION("combined and attached forms, as fsck(8) and systemd-fsck pass them") {
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"-pf"}, {"-fy"}, {"-a"}, {"-f", "-C", "7"}, {"-C7", "-p"}, {"-nf"}, {"-m", v.meta_dir()}}) {
      std::vector<std::string> argv{fsck};
      argv.insert(argv.end(), args.begin(), args.end());
      argv.push_back(v.image());
      CommandResult r = RunCommand(argv);
      INFO(r.Describe());
      CHECK(r.exit_status == 0);
      CHECK(Contains(r.out, ": clean"));
    }
  }
  SECTION("operational errors exit 8 with one line on stderr") {
    const std::string zeros = v.TempPath("zeros.img");
    { std::ofstream(zeros) << std::string(1 << 20, '\0'); }
    CommandResult not_ours = RunCommand({fsck, "-n", zeros});
    CHECK(not_ours.exit_status == 8);
    CHECK(Contains(not_ours.err, "not a nosyncfs device"));
    CHECK(std::count(not_ours.err.begin(), not_ours.err.end(), '\n') == 1);
    CHECK(RunCommand({fsck, "-p", zeros}).exit_status == 8);
    CommandResult missing = RunCommand({fsck, v.TempPath("nothing-here")});
    CHECK(missing.exit_status == 8);
    CHECK(std::count(missing.err.begin(), missing.err.end(), '\n') == 1);
    v.Mount();
    CommandResult busy = RunCommand({fsck, "-n", v.image()});
    CHECK(busy.exit_status == 8);
    CHECK(Contains(busy.err, "in use"));
    v.Unmount();
  }
  SECTION("-C FD writes PASS DONE TOTAL DEVICE lines, -C 0 a human form on stdout") {
    v.Mount();
    WriteFile(v.Path("f"), Pattern(5, 50000));
    v.Unmount();
    CommandResult r = RunCommand({"env", "NSF_PROGRESS_AT_ONCE=1", fsck, "-f", "-C", "1", v.image()});
    INFO(r.Describe() << "\n" << r.out);
    CHECK(r.exit_status == 0);
    const std::regex line("[1-5] [0-9]+ [0-9]+ " + v.image());
    std::istringstream lines(r.out);
    std::set<std::string> passes;
    int progress_lines = 0;
    for (std::string l; std::getline(lines, l);) {
      if (Contains(l, ": clean")) continue;
      CHECK(std::regex_match(l, line));
      passes.insert(l.substr(0, 1));
      ++progress_lines;
    }
    CHECK(progress_lines > 0);
    CHECK(passes.count("1") == 1);
    CHECK(passes.count("5") == 1);
    CommandResult human = RunCommand({"env", "NSF_PROGRESS_AT_ONCE=1", fsck, "-C0", v.image()});
    CHECK(human.exit_status == 0);
    CHECK(Contains(human.out, v.image() + " pass 1, inodes: 100%"));
    // Without -C, the same goes to stderr.
    CommandResult plain = RunCommand({"env", "NSF_PROGRESS_AT_ONCE=1", fsck, v.image()});
    CHECK(Contains(plain.err, v.image() + " pass 1, inodes: 100%"));
    CHECK_FALSE(Contains(plain.out, "pass 1"));
  }
  SECTION("without a repair option, problems are reported and left (exit 4)") {
    {
      Store s(v);
      InodeRecord root = s.Inode(kRootIno);
      root.nlink = 9;
      s.PutInode(root);
    }
    CommandResult r = Fsck(v, {});
    INFO(r.Describe() << "\n" << r.out);
    CHECK(r.exit_status == 4);
    CHECK(Contains(r.out, "problem: inode 1 (directory): link count 9"));
    CHECK(Contains(r.err, "fsck.nosyncfs -p repairs the safe ones, -y all it can"));
    CHECK(Fsck(v, {}).exit_status == 4);  // still there
    CHECK(Fsck(v, {"-p"}).exit_status == 1);
    CHECK(Fsck(v, {}).exit_status == 0);
  }
}

TEST_CASE("fsck.nosyncfs -n after a kill -9: the pending recovery is the problem, nothing changes",
          "[posix][fsck][persistence]") {
  TestVolume v;
  v.Mount();
  WriteFile(v.Path("f"), Pattern(9, 10000));
  Fd open_file = MustOpen(v.Path("doomed"), O_CREAT | O_RDWR);
  MustPwrite(open_file.get(), Pattern(10, 5000), 0);
  REQUIRE(ErrnoOf(unlink(v.Path("doomed").c_str())) == 0);
  SyncWholeFs(v.mountpoint());
  v.SigkillDaemon();
  open_file.reset();
  v.ClearDeadMount();
  const auto before = Snapshot(v);
  CommandResult n = Fsck(v, {"-n"});
  INFO(n.Describe() << "\n" << n.out);
  CHECK(n.exit_status == 4);
  CHECK(Contains(n.out, "problem: " + v.image() + " needs recovery (log replay of "));
  CHECK(Snapshot(v) == before);
  // Recovery (as a mount does) leaves the orphan for the mount: noted.
  CommandResult plain = Fsck(v, {});
  INFO(plain.Describe() << "\n" << plain.out);
  CHECK(plain.exit_status == 0);
  CHECK(Contains(plain.out, "note: 1 orphan inode not freed yet"));
  // Now -n can check, and counts the orphan as left to do.
  CHECK(Fsck(v, {"-n"}).exit_status == 4);
  CommandResult p = Fsck(v, {"-p"});
  INFO(p.Describe() << "\n" << p.out);
  CHECK(p.exit_status == 1);
  CHECK(Contains(p.out, "repaired: freed orphan inode"));
  CHECK(Fsck(v, {"-n"}).exit_status == 0);
  v.Mount();
  CHECK(ReadFile(v.Path("f")) == Pattern(9, 10000));
}

}  // namespace nosyncfs::test
