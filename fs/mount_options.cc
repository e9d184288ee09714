#include "fs/mount_options.h"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <array>
#include <sstream>
#include <string_view>

namespace nosyncfs {

const char kMountUsage[] =
    "usage: nosyncfs DEVICE MOUNTPOINT [-f] [-d] [-o OPTION[,OPTION...]]\n"
    "  -f                     stay in the foreground\n"
    "  -d                     debug output and every FUSE request (implies -f)\n"
    "  -o ro                  read-only: nothing on DEVICE or in its metadata\n"
    "                         changes; refused if DEVICE needs recovery\n"
    "  -o debug               debug log lines (to syslog once daemonized)\n"
    "  -o emulate=strict      strict persistence emulation: only persisted data\n"
    "                         reaches DEVICE (for tests and honest demos)\n"
    "  -o emulate=evict:SEED  strict emulation where unpersisted stores may also\n"
    "                         reach DEVICE early, 8-byte word by word, as cache\n"
    "                         evictions on real pmem allow; SEED (nonzero)\n"
    "                         reproduces the choice (crash tests)\n"
    "  -o emulate=none        real persistence (default)\n"
    "  -o meta=DIR            metadata store directory (default: from the superblock)\n"
    "  -o nf_punch=split|deny hole punch / truncate over no-fsync ranges (default split)\n"
    "  -o lock_wait=SECONDS   wait this long for a device another process has locked,\n"
    "                         such as a daemon still shutting down after umount\n"
    "                         (default 10; 0: fail at once)\n"
    "  -o direct=WHO[:WHO...] allow direct access (libnosyncfs) to WHO: a group\n"
    "                         name or number, or @USER (a user name or number);\n"
    "                         off by default. See docs/semantics.md, Direct access\n"
    "  -o lease_break=SECONDS how long a direct-access client has to give up a\n"
    "                         revoked lease before it is cut off (default 5)\n"
    "  -o uring=auto|off      serve FUSE requests over io_uring when the kernel\n"
    "                         offers it (fuse module parameter enable_uring), or\n"
    "                         always over /dev/fuse (default auto)\n"
    "  -o noatime|relatime|strictatime, nodiratime: when reads update atime\n"
    "                         (default relatime; the daemon keeps atime itself)\n"
    "  -o remount             change the options of the live mount on MOUNTPOINT\n"
    "                         (mount -o remount runs this): ro, rw, atime options,\n"
    "                         nf_punch=, lease_break=, debug\n"
    "  mount flags (rw, nodev, nosuid, noexec, sync, dirsync, ...)\n"
    "  and libfuse's allow_other, allow_root, auto_unmount and max_read=N are passed\n"
    "  on; fstab-only options (defaults, auto, noauto, nofail, _netdev, user, users,\n"
    "  owner, group, comment=..., x-...) are ignored\n";

namespace {

// Kernel mount flags libfuse knows, and libfuse's own options worth
// allowing; both are passed to fuse_session_new as given.
constexpr std::array<std::string_view, 15> kPassedOptions = {
    "rw",      "dev",         "nodev",      "suid",       "nosuid",
    "exec",    "noexec",      "atime",      "sync",       "async",
    "dirsync", "allow_other", "allow_root", "auto_unmount", "default_permissions"};
constexpr std::array<std::string_view, 1> kPassedPrefixes = {"max_read="};

// Options for mount(8), systemd's fstab generator or the fstab reader, which
// may reach the helper: nothing for the daemon to do. fsname= and subtype=
// are set by the daemon itself (a second mount finds the first by fsname).
// lazytime changes nothing: atime is always written lazily here.
constexpr std::array<std::string_view, 17> kIgnoredOptions = {
    "defaults", "auto",    "noauto",     "nofail",   "_netdev",    "user",
    "nouser",   "users",   "owner",      "group",    "loud",       "silent",
    "iversion", "noiversion", "lazytime", "nolazytime", "symfollow"};
constexpr std::array<std::string_view, 5> kIgnoredPrefixes = {"x-", "comment=", "fsname=",
                                                              "subtype=", "X-mount."};
// The kernel's FUSE options, which mount(8) reads back from mountinfo and
// passes to a remount: nothing to change there.
constexpr std::array<std::string_view, 4> kRemountKernelPrefixes = {"user_id=", "group_id=",
                                                                    "rootmode=", "blksize="};

template <size_t N>
bool StartsWithAny(const std::string& opt, const std::array<std::string_view, N>& prefixes) {
  for (std::string_view p : prefixes) {
    if (opt.compare(0, p.size(), p) == 0) return true;
  }
  return false;
}

template <size_t N>
bool IsOneOf(const std::string& opt, const std::array<std::string_view, N>& names) {
  for (std::string_view n : names) {
    if (opt == n) return true;
  }
  return false;
}

// Digits only: a number, not a name.
bool IsNumber(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// direct=WHO[:WHO...]: groups, or @users, by name or number.
Status ApplyDirect(const std::string& value, DirectAccessOptions* out) {
  if (value.empty()) return Status::Error(EINVAL, "direct needs a group or @user");
  std::stringstream ss(value);
  std::string who;
  while (std::getline(ss, who, ':')) {
    const bool user = !who.empty() && who[0] == '@';
    const std::string name = user ? who.substr(1) : who;
    if (name.empty()) return Status::Error(EINVAL, "direct: empty name in '" + value + "'");
    if (user) {
      const passwd* pw = IsNumber(name) ? nullptr : getpwnam(name.c_str());
      if (!IsNumber(name) && pw == nullptr) {
        return Status::Error(EINVAL, "direct: no user '" + name + "'");
      }
      out->users.push_back(pw ? pw->pw_uid : static_cast<uid_t>(std::stoul(name)));
    } else {
      const group* gr = IsNumber(name) ? nullptr : getgrnam(name.c_str());
      if (!IsNumber(name) && gr == nullptr) {
        return Status::Error(EINVAL, "direct: no group '" + name + "' (a user is @" + name + ")");
      }
      out->groups.push_back(gr ? gr->gr_gid : static_cast<gid_t>(std::stoul(name)));
    }
  }
  return Status::Ok();
}

// Which of MountOptions::given an option names, or "".
std::string KindOf(const std::string& opt, const std::string& key) {
  if (opt == "ro" || opt == "rw") return "ro";
  if (opt == "noatime" || opt == "relatime" || opt == "norelatime" || opt == "strictatime") {
    return "atime";
  }
  if (opt == "diratime" || opt == "nodiratime") return "diratime";
  for (const char* k :
       {"emulate", "meta", "nf_punch", "direct", "lease_break", "lock_wait", "uring", "debug"}) {
    if (key == k) return k;
  }
  return "";
}

Status ApplyOption(const std::string& opt, MountOptions* out) {
  auto eq = opt.find('=');
  std::string key = opt.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  if (std::string kind = KindOf(opt, key); !kind.empty()) out->given.insert(kind);
  if (opt == "remount") {
    out->remount = true;
  } else if (out->remount && (opt == "bind" || StartsWithAny(opt, kRemountKernelPrefixes))) {
    if (opt == "bind") out->fuse_options.push_back(opt);
  } else if (key == "emulate") {
    out->volume.evict_seed = 0;
    if (value == "strict") {
      out->volume.strict_emulation = true;
    } else if (value == "none") {
      out->volume.strict_emulation = false;
    } else if (value.rfind("evict:", 0) == 0) {
      const std::string seed = value.substr(6);
      char* end = nullptr;
      errno = 0;
      out->volume.evict_seed = std::strtoull(seed.c_str(), &end, 0);
      if (seed.empty() || seed[0] == '-' || errno != 0 || *end != '\0' ||
          out->volume.evict_seed == 0) {
        return Status::Error(EINVAL, "emulate=evict needs a nonzero seed, not '" + seed + "'");
      }
      out->volume.strict_emulation = true;
    } else {
      return Status::Error(EINVAL,
                           "emulate must be strict, evict:SEED or none, not '" + value + "'");
    }
  } else if (key == "lock_wait") {
    char* end = nullptr;
    errno = 0;
    unsigned long seconds = std::strtoul(value.c_str(), &end, 10);
    if (value.empty() || value[0] == '-' || errno != 0 || *end != '\0' || seconds > 3600) {
      return Status::Error(EINVAL, "lock_wait must be 0..3600 seconds, not '" + value + "'");
    }
    out->lock_wait_seconds = static_cast<uint32_t>(seconds);
  } else if (key == "direct") {
    NSF_RETURN_IF_ERROR(ApplyDirect(value, &out->direct));
  } else if (key == "lease_break") {
    char* end = nullptr;
    errno = 0;
    unsigned long seconds = std::strtoul(value.c_str(), &end, 10);
    if (value.empty() || value[0] == '-' || errno != 0 || *end != '\0' || seconds < 1 ||
        seconds > 300) {
      return Status::Error(EINVAL, "lease_break must be 1..300 seconds, not '" + value + "'");
    }
    out->direct.lease_break_ms = static_cast<uint32_t>(seconds * 1000);
  } else if (key == "uring") {
    if (value != "auto" && value != "off") {
      return Status::Error(EINVAL, "uring must be auto or off, not '" + value + "'");
    }
    out->transport.uring = value == "auto";
  } else if (key == "meta") {
    if (value.empty()) return Status::Error(EINVAL, "meta needs a directory");
    out->volume.meta_dir = value;
  } else if (key == "nf_punch") {
    if (value == "split") {
      out->vfs.nf_punch = VfsOptions::NfPunch::kSplit;
    } else if (value == "deny") {
      out->vfs.nf_punch = VfsOptions::NfPunch::kDeny;
    } else {
      return Status::Error(EINVAL, "nf_punch must be split or deny, not '" + value + "'");
    }
  } else if (opt == "ro" || opt == "rw") {
    // ro: the volume opens read-only (nothing on the device or in the
    // store changes; refused while recovery is pending), and the kernel
    // refuses changes too. The last of ro and rw wins.
    out->volume.read_only = opt == "ro";
    out->fuse_options.push_back(opt);
  } else if (opt == "noatime" || opt == "relatime" || opt == "norelatime" ||
             opt == "strictatime") {
    // The daemon keeps atime (VfsOptions::atime); noatime also marks the
    // mount, which libfuse can do for it alone of the three.
    out->vfs.atime = opt == "noatime"       ? VfsOptions::Atime::kNever
                     : opt == "relatime"    ? VfsOptions::Atime::kRelative
                                            : VfsOptions::Atime::kAlways;
    std::erase(out->fuse_options, std::string("noatime"));
    if (opt == "noatime") out->fuse_options.push_back(opt);
  } else if (opt == "diratime" || opt == "nodiratime") {
    out->vfs.dir_atime = opt == "diratime";
  } else if (opt == "nosymfollow") {
    return Status::Error(EINVAL, "nosymfollow is not supported on FUSE mounts by this libfuse");
  } else if (opt == "debug") {
    out->debug = true;
  } else if (IsOneOf(opt, kPassedOptions) || StartsWithAny(opt, kPassedPrefixes)) {
    out->fuse_options.push_back(opt);
  } else if (!opt.empty() && !IsOneOf(opt, kIgnoredOptions) &&
             !StartsWithAny(opt, kIgnoredPrefixes)) {
    return Status::Error(EINVAL, "unknown mount option '" + opt + "'");
  }
  return Status::Ok();
}

// Every -o list in order. `remount` anywhere makes the remount-only
// options acceptable everywhere (mount(8) puts it in the middle).
Status ApplyOptions(const std::vector<std::string>& lists, MountOptions* out) {
  for (const std::string& list : lists) {
    if (!out->option_text.empty() && !list.empty()) out->option_text += ",";
    out->option_text += list;
  }
  std::vector<std::string> opts;
  std::stringstream ss(out->option_text);
  for (std::string opt; std::getline(ss, opt, ',');) opts.push_back(opt);
  out->remount = std::find(opts.begin(), opts.end(), "remount") != opts.end();
  for (const std::string& opt : opts) NSF_RETURN_IF_ERROR(ApplyOption(opt, out));
  return Status::Ok();
}

}  // namespace

Result<MountOptions> ParseOptionList(const std::string& list) {
  MountOptions out;
  NSF_RETURN_IF_ERROR(ApplyOptions({list}, &out));
  return out;
}

Result<MountOptions> ParseMountOptions(int argc, char** argv) {
  MountOptions out;
  std::vector<std::string> positional;
  std::vector<std::string> lists;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
    } else if (arg == "-f") {
      out.foreground = true;
    } else if (arg == "-d") {
      out.debug = out.trace_requests = out.foreground = true;
    } else if (arg == "-n" || arg == "-s" || arg == "-v") {
      // mount(8) helper flags: no mtab (there is none), sloppy, verbose.
    } else if (arg == "-t") {
      if (++i >= argc) return Status::Error(EINVAL, "-t needs a type");  // mount.fuse3's
      if (std::string(argv[i]) != "fuse.nosyncfs" && std::string(argv[i]) != "nosyncfs") {
        return Status::Error(EINVAL, std::string("cannot mount type ") + argv[i]);
      }
    } else if (arg == "-o" || (arg.rfind("-o", 0) == 0 && arg.size() > 2)) {
      if (arg == "-o") {
        if (++i >= argc) return Status::Error(EINVAL, "-o needs an argument");
        lists.push_back(argv[i]);
      } else {
        lists.push_back(arg.substr(2));
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::Error(EINVAL, "unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  NSF_RETURN_IF_ERROR(ApplyOptions(lists, &out));
  if (out.help) return out;
  if (positional.size() != 2) return Status::Error(EINVAL, "need DEVICE and MOUNTPOINT");
  out.device = positional[0];
  out.mountpoint = positional[1];
  if (out.direct.enabled() && out.volume.read_only && !out.remount) {
    return Status::Error(EINVAL, "direct= needs a read-write mount (not with ro)");
  }
  return out;
}

}  // namespace nosyncfs
