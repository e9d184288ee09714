// fsck.nosyncfs: recovers a device exactly as a mount would, then checks the
// metadata for consistency. Exit 0: clean; 1: problems found; 8: the device
// or store could not be opened (the message says why).
#include <cstdio>
#include <string>

#include "journal/checker.h"
#include "journal/volume.h"

int main(int argc, char** argv) {
  nosyncfs::VolumeOptions options;
  options.tolerate_double_mapping = true;  // the checker names such blocks
  std::string device;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-m" && i + 1 < argc) {
      options.meta_dir = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::printf("usage: fsck.nosyncfs [-m METADIR] DEVICE\n");
      return 0;
    } else if (device.empty() && !arg.empty() && arg[0] != '-') {
      device = arg;
    } else {
      std::fprintf(stderr, "usage: fsck.nosyncfs [-m METADIR] DEVICE\n");
      return 8;
    }
  }
  if (device.empty()) {
    std::fprintf(stderr, "usage: fsck.nosyncfs [-m METADIR] DEVICE\n");
    return 8;
  }
  auto volume = nosyncfs::Volume::Open(device, options);
  if (!volume.ok()) {
    std::fprintf(stderr, "fsck.nosyncfs: %s\n", volume.status().message().c_str());
    return 8;
  }
  auto report = nosyncfs::CheckVolume(**volume);
  if (!report.ok()) {
    std::fprintf(stderr, "fsck.nosyncfs: %s\n", report.status().message().c_str());
    return 8;
  }
  for (const auto& p : report->problems) std::printf("problem: %s\n", p.c_str());
  std::printf("%s: %llu inodes (%llu directories), %llu entries, %llu extents, %llu blocks mapped, "
              "%llu free: %s\n",
              device.c_str(), static_cast<unsigned long long>(report->inodes),
              static_cast<unsigned long long>(report->directories),
              static_cast<unsigned long long>(report->entries),
              static_cast<unsigned long long>(report->extents),
              static_cast<unsigned long long>(report->mapped_blocks),
              static_cast<unsigned long long>((*volume)->free_blocks()),
              report->clean() ? "clean" : "PROBLEMS FOUND");
  return report->clean() ? 0 : 1;
}
