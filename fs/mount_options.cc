#include "fs/mount_options.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace nosyncfs {

const char kMountUsage[] =
    "usage: nosyncfs DEVICE MOUNTPOINT [-f] [-d] [-o OPTION[,OPTION...]]\n"
    "  -f                     stay in the foreground\n"
    "  -d                     debug output (implies -f)\n"
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
    "  other -o options are passed to FUSE\n";

namespace {

Status ApplyOption(const std::string& opt, MountOptions* out) {
  auto eq = opt.find('=');
  std::string key = opt.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  if (key == "emulate") {
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
  } else if (!opt.empty()) {
    out->fuse_options.push_back(opt);
  }
  return Status::Ok();
}

}  // namespace

Result<MountOptions> ParseMountOptions(int argc, char** argv) {
  MountOptions out;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
    } else if (arg == "-f") {
      out.foreground = true;
    } else if (arg == "-d") {
      out.debug = out.foreground = true;
    } else if (arg == "-o" || (arg.rfind("-o", 0) == 0 && arg.size() > 2)) {
      std::string list;
      if (arg == "-o") {
        if (++i >= argc) return Status::Error(EINVAL, "-o needs an argument");
        list = argv[i];
      } else {
        list = arg.substr(2);
      }
      std::stringstream ss(list);
      std::string opt;
      while (std::getline(ss, opt, ',')) NSF_RETURN_IF_ERROR(ApplyOption(opt, &out));
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::Error(EINVAL, "unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (out.help) return out;
  if (positional.size() != 2) return Status::Error(EINVAL, "need DEVICE and MOUNTPOINT");
  out.device = positional[0];
  out.mountpoint = positional[1];
  return out;
}

}  // namespace nosyncfs
