// Failing a call of the API: errno for programs, nsf_errmsg() for people.
#ifndef NOSYNCFS_CLIENT_ERROR_H
#define NOSYNCFS_CLIENT_ERROR_H

#include <string>

namespace nsf {

// Sets errno and the calling thread's nsf_errmsg(); returns -1, so that a
// failing call can end with `return Fail(EPERM, "...")`.
int Fail(int error, std::string message);

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_ERROR_H
