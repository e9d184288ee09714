#include "fs/remount.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>

#include "fs/credentials.h"
#include "fs/direct_server.h"
#include "fs/mountinfo.h"
#include "fs/vfs.h"

namespace nosyncfs {
namespace {


bool HasWord(const std::string& list, const std::string& word) {
  std::stringstream ss(list);
  for (std::string w; std::getline(ss, w, ',');) {
    if (w == word) return true;
  }
  return false;
}

// The mount(2) flags of a remount: the mount point's own flags as they are
// (a remount sets all of them), changed as `requested` says.
unsigned long RemountFlags(const MountInfoEntry& e, const MountOptions& requested) {
  unsigned long flags = MS_REMOUNT;
  for (const auto& [word, flag] : std::initializer_list<std::pair<const char*, unsigned long>>{
           {"nosuid", MS_NOSUID}, {"nodev", MS_NODEV}, {"noexec", MS_NOEXEC},
           {"noatime", MS_NOATIME}, {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME},
           {"sync", MS_SYNCHRONOUS}, {"dirsync", MS_DIRSYNC}}) {
    if (HasWord(e.mount_options, word) || HasWord(e.super_options, word)) flags |= flag;
  }
  for (const std::string& o : requested.fuse_options) {
    if (o == "nosuid") flags |= MS_NOSUID;
    if (o == "suid") flags &= ~MS_NOSUID;
    if (o == "nodev") flags |= MS_NODEV;
    if (o == "dev") flags &= ~MS_NODEV;
    if (o == "noexec") flags |= MS_NOEXEC;
    if (o == "exec") flags &= ~MS_NOEXEC;
    if (o == "sync") flags |= MS_SYNCHRONOUS;
    if (o == "async") flags &= ~MS_SYNCHRONOUS;
    if (o == "dirsync") flags |= MS_DIRSYNC;
    if (o == "bind") flags |= MS_BIND;
  }
  if (requested.given.count("atime")) {
    flags &= ~(MS_NOATIME | MS_RELATIME | MS_STRICTATIME);
    switch (requested.vfs.atime) {
      case VfsOptions::Atime::kNever: flags |= MS_NOATIME; break;
      case VfsOptions::Atime::kRelative: flags |= MS_RELATIME; break;
      case VfsOptions::Atime::kAlways: flags |= MS_STRICTATIME; break;
    }
  }
  if (requested.given.count("diratime")) {
    flags = requested.vfs.dir_atime ? flags & ~MS_NODIRATIME : flags | MS_NODIRATIME;
  }
  const bool read_only = requested.given.count("ro")
                             ? requested.volume.read_only
                             : HasWord((flags & MS_BIND) ? e.mount_options : e.super_options, "ro");
  if (read_only) flags |= MS_RDONLY;
  return flags;
}

int Fail(const std::string& mountpoint, const std::string& why) {
  std::fprintf(stderr, "nosyncfs: cannot remount %s: %s\n", mountpoint.c_str(), why.c_str());
  return 1;
}

// One NSF_IOC_REMOUNT; "" when the daemon took it, else why not.
std::string AskDaemon(int dir, uint32_t phase, const std::string& options) {
  nsf_remount_args args{};
  args.phase = phase;
  if (options.size() >= sizeof(args.options)) return "the option list is too long";
  std::memcpy(args.options, options.c_str(), options.size() + 1);
  if (::ioctl(dir, NSF_IOC_REMOUNT, &args) != 0) {
    switch (errno) {
      case ENOTTY:
      case ENOSYS: return "its daemon does not know remount (an older nosyncfs?)";
      case EPERM: return "remount needs CAP_SYS_ADMIN (root)";
      case ENOTCONN: return "its daemon is gone (unmount it)";
      default: return std::strerror(errno);
    }
  }
  if (args.error == 0) return "";
  args.message[sizeof(args.message) - 1] = '\0';
  return args.message[0] != '\0' ? args.message : std::strerror(args.error);
}

}  // namespace

int RunRemount(const MountOptions& requested) {
  const std::string mountpoint = RealPath(requested.mountpoint);
  std::optional<MountInfoEntry> entry;
  for (MountInfoEntry& e : ReadMountInfo()) {
    if (e.mount_point == mountpoint) entry = std::move(e);  // the last one is on top
  }
  if (!entry) return Fail(requested.mountpoint, "nothing is mounted there");
  if (entry->fstype != "fuse.nosyncfs") {
    return Fail(requested.mountpoint, "it is not a nosyncfs mount (" + entry->fstype + ")");
  }
  const unsigned long flags = RemountFlags(*entry, requested);
  auto kernel_remount = [&](unsigned long f) {
    return ::mount(entry->source.c_str(), mountpoint.c_str(), nullptr, f, nullptr) == 0 ? 0
                                                                                        : errno;
  };
  // A bind remount changes this mount point's flags alone: nothing for
  // the daemon, whose file system stays as it is.
  if (flags & MS_BIND) {
    const int err = kernel_remount(flags);
    return err == 0 ? 0 : Fail(requested.mountpoint, std::strerror(err));
  }
  const int dir = ::open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Fail(requested.mountpoint, std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{dir};
  if (std::string why = AskDaemon(dir, NSF_REMOUNT_CHECK, requested.option_text); !why.empty()) {
    return Fail(requested.mountpoint, why);
  }
  if (flags & MS_RDONLY) {
    // The kernel first: it refuses while a file is open for writing, and
    // writes back what shared mappings dirtied while the daemon still
    // takes it.
    if (const int err = kernel_remount(flags); err != 0) {
      return Fail(requested.mountpoint,
                  err == EBUSY ? "a file on it is open for writing (EBUSY)" : std::strerror(err));
    }
    if (std::string why = AskDaemon(dir, NSF_REMOUNT_APPLY, requested.option_text);
        !why.empty()) {
      (void)kernel_remount(flags & ~MS_RDONLY);  // as it was
      return Fail(requested.mountpoint, why);
    }
    return 0;
  }
  if (std::string why = AskDaemon(dir, NSF_REMOUNT_APPLY, requested.option_text); !why.empty()) {
    return Fail(requested.mountpoint, why);
  }
  if (const int err = kernel_remount(flags); err != 0) {
    if (HasWord(entry->super_options, "ro")) (void)AskDaemon(dir, NSF_REMOUNT_APPLY, "ro");
    return Fail(requested.mountpoint, std::strerror(err));
  }
  return 0;
}

// ---- the daemon's side ------------------------------------------------------------

void Remounter::Handle(nsf_remount_args* args) {
  args->options[sizeof(args->options) - 1] = '\0';
  auto answer = [&](int error, const std::string& message) {
    args->error = error;
    std::snprintf(args->message, sizeof(args->message), "%s", message.c_str());
  };
  std::lock_guard lock(mu_);
  Result<MountOptions> requested = ParseOptionList(args->options);
  if (!requested.ok()) return answer(EINVAL, requested.status().message());
  if (std::string why = Refusal(*requested); !why.empty()) return answer(EINVAL, why);
  if (requested->given.count("ro") && !requested->volume.read_only &&
      vfs_->volume().read_only()) {
    return answer(EROFS, "it was mounted with -o ro, which opens the device read-only: unmount "
                         "it and mount it read-write");
  }
  if (args->phase != NSF_REMOUNT_APPLY) return answer(0, "");
  Status st = Apply(*requested);
  if (!st.ok()) return answer(st.code(), st.message());
  spdlog::info("remounted with {}", args->options);
  answer(0, "");
}

std::string Remounter::Refusal(const MountOptions& requested) const {
  auto fixed = [](const std::string& what) {
    return what + " cannot change on a remount: unmount, and mount with the new value";
  };
  if (requested.given.count("emulate") &&
      (requested.volume.strict_emulation != current_.volume.strict_emulation ||
       requested.volume.evict_seed != current_.volume.evict_seed)) {
    return fixed("emulate=");
  }
  if (requested.given.count("meta") &&
      RealPath(requested.volume.meta_dir) != RealPath(vfs_->volume().meta_dir())) {
    return fixed("meta=");
  }
  if (requested.given.count("uring") && requested.transport.uring != current_.transport.uring) {
    return fixed("uring=");
  }
  if (requested.given.count("direct")) {
    auto sorted = [](auto v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    if (sorted(requested.direct.users) != sorted(current_.direct.users) ||
        sorted(requested.direct.groups) != sorted(current_.direct.groups)) {
      return fixed("direct=");
    }
  }
  return "";
}

Status Remounter::Apply(const MountOptions& requested) {
  VfsOptions vfs_options = vfs_->options();
  if (requested.given.count("atime")) vfs_options.atime = requested.vfs.atime;
  if (requested.given.count("diratime")) vfs_options.dir_atime = requested.vfs.dir_atime;
  if (requested.given.count("nf_punch")) vfs_options.nf_punch = requested.vfs.nf_punch;
  vfs_->SetOptions(vfs_options);
  current_.vfs = vfs_options;
  if (requested.given.count("lease_break")) {
    current_.direct.lease_break_ms = requested.direct.lease_break_ms;
    if (direct_ != nullptr) direct_->set_lease_break_ms(requested.direct.lease_break_ms);
  }
  if (requested.given.count("debug")) spdlog::set_level(spdlog::level::debug);
  if (!requested.given.count("ro")) return Status::Ok();
  return requested.volume.read_only ? vfs_->RemountReadOnly() : vfs_->RemountReadWrite();
}

}  // namespace nosyncfs
