// mkfs.nosyncfs: formats a device or image file.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "journal/volume.h"
#include "tools/size_arg.h"

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: mkfs.nosyncfs [-f] [-q] [-b BLOCKSIZE] [-s SIZE] [-m METADIR] DEVICE\n"
               "  DEVICE       /dev/pmemN, /dev/daxX.Y or an image file\n"
               "  -s SIZE      create (or resize) DEVICE as an image file of SIZE (e.g. 1G)\n"
               "  -b BLOCKSIZE allocation block size in bytes (default 4096)\n"
               "  -m METADIR   where to keep the metadata store (default: DEVICE.meta for an\n"
               "               image file, /var/lib/nosyncfs/UUID for a device)\n"
               "  -f           overwrite an existing nosyncfs\n"
               "  -q           print nothing but errors\n"
               "  -V           print the version and exit\n");
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "mkfs.nosyncfs: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  nosyncfs::FormatOptions options;
  std::optional<uint64_t> image_size;
  bool quiet = false;
  int c;
  while ((c = getopt(argc, argv, "fqVb:s:m:h")) != -1) {
    switch (c) {
      case 'f': options.force = true; break;
      case 'q': quiet = true; break;
      case 'V': std::printf("mkfs.nosyncfs %s\n", NSF_VERSION); return 0;
      case 'b': {
        auto bs = nosyncfs::ParseSizeArg(optarg);
        if (!bs || *bs > UINT32_MAX) return Fail(std::string("bad block size: ") + optarg);
        options.block_size = static_cast<uint32_t>(*bs);
        break;
      }
      case 's':
        image_size = nosyncfs::ParseSizeArg(optarg);
        if (!image_size) return Fail(std::string("bad size: ") + optarg);
        break;
      case 'm': options.meta_dir = optarg; break;
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 2;
    }
  }
  if (optind + 1 != argc) {
    Usage(stderr);
    return 2;
  }
  std::string device = argv[optind];
  if (image_size) {
    struct stat st;
    if (stat(device.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return Fail(device + ": -s only applies to image files");
    }
    int fd = open(device.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(*image_size)) != 0) {
      return Fail(nosyncfs::ErrnoStatus(device).message());
    }
    close(fd);
  }
  auto sb = nosyncfs::Volume::Format(device, options);
  if (!sb.ok()) return Fail(sb.status().message());
  if (quiet) return 0;
  std::printf("formatted %s as nosyncfs\n", device.c_str());
  std::printf("  uuid            %s\n", sb->UuidString().c_str());
  std::printf("  size            %llu bytes\n", static_cast<unsigned long long>(sb->device_size));
  std::printf("  block size      %u\n", sb->block_size);
  std::printf("  data blocks     %llu (%llu MiB)\n",
              static_cast<unsigned long long>(sb->data_blocks),
              static_cast<unsigned long long>(sb->data_blocks * sb->block_size >> 20));
  std::printf("  log             %llu KiB at offset %llu\n",
              static_cast<unsigned long long>(sb->log_length >> 10),
              static_cast<unsigned long long>(sb->log_offset));
  std::printf("  metadata store  %s\n", sb->meta_dir.c_str());
  return 0;
}
