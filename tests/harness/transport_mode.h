// Which FUSE transport the real-mount tests run on (fs/transport/).
//
// Run a test binary with NSF_TEST_TRANSPORT=uring and every mount the
// harness makes (TestVolume::Mount) is made with the fuse module's
// enable_uring parameter on, and must come up serving over io_uring;
// with NSF_TEST_TRANSPORT=dev_fuse, or unset, the parameter is off and
// the mount must serve over /dev/fuse. The daemon's log says which it got
// ("transport: ..."); a mount that got the other one fails its test.
//
// The parameter is global to the machine: it is set under a lock file,
// held from before the mount until its INIT has been answered, so that
// test processes running side by side never mount on each other's
// setting; and the value the first of them found is put back when the last
// one exits (a list of live test processes beside the lock file).
//
// Not thread-safe: mount from the Catch test thread only.
#pragma once

#include <string>

namespace nosyncfs::test {

enum class Transport { kDevFuse, kUring };

// From $NSF_TEST_TRANSPORT; a value other than "uring" or "dev_fuse"
// fails the run.
Transport TestTransport();

// The start of the daemon's log line for the transport (fs/transport/fuse_channel.cc).
std::string TransportLogLine(Transport transport);

// Whether this kernel has the parameter at all (FUSE over io_uring built in).
bool KernelHasUring();

// Sets the parameter for `transport` and holds the lock until destroyed
// (the mount's INIT answered). REQUIREs that the parameter can be set.
class TransportForMount {
 public:
  explicit TransportForMount(Transport transport);
  ~TransportForMount();
  TransportForMount(const TransportForMount&) = delete;
  TransportForMount& operator=(const TransportForMount&) = delete;

 private:
  int lock_fd_ = -1;
};

}  // namespace nosyncfs::test
