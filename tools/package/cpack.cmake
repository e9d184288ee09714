# `cpack -G DEB` in the build directory: one Debian package per install
# component of tools/package/install.cmake, the binaries stripped and their
# debug symbols in -dbgsym packages, as Debian builds them. `lintian *.deb`
# has nothing to say about them (tests/install/package_test.sh checks it).

set(CPACK_PACKAGE_NAME nosyncfs)
set(CPACK_PACKAGE_VENDOR "nosyncfs")
set(CPACK_PACKAGE_CONTACT "nosyncfs developers <dev@nosyncfs.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL ${NSF_PACKAGE_COMPONENTS} ${NSF_PACKAGE_DEBUG_COMPONENTS})
foreach(component IN LISTS CPACK_COMPONENTS_ALL)
  string(TOUPPER ${component} upper)
  nsf_package_of(${component} CPACK_DEBIAN_${upper}_PACKAGE_NAME)
endforeach()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Debian's own packages are xz-compressed: the daemon's package is 500 KiB,
# 890 KiB with gzip.
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

# The packaged binaries are stripped; the debug symbols go to the -dbgsym
# packages by the install step (tools/package/keep_debug.cmake). Not CPack's
# own CPACK_DEBIAN_DEBUGINFO_PACKAGE: in CMake 3.25 its .ddeb lists
# build-directory paths in md5sums (dpkg --verify fails on every file) and
# has no copyright file, both lintian errors.
set(CPACK_STRIP_FILES ON)

# Dependencies on shared libraries: dpkg-shlibdeps reads them off the
# binaries. It finds libnosyncfs.so.0 (which the shim needs) in the build
# tree, where no package says where it comes from; the shim's package
# names it itself.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR}/lib)
set(nsf_exact_version "(= ${PROJECT_VERSION})")

# A synopsis line, then the extended description (CPack indents it; a line
# with a single "." is an empty line).
set(nsf_about "nosyncfs keeps file data on a DAX persistent-memory device (or an image
file that emulates one) and an extent map with a persistent per-extent
no-fsync flag. A write into a flagged range is durable when it returns, so
fsync has nothing left to do for it; hole punch, truncate, zero range and
copy against flagged extents are atomic, and a crash never loses an
acknowledged write.")

set(CPACK_DEBIAN_FILESYSTEM_PACKAGE_SECTION admin)
# fusermount3 and mount.fuse3 are needed at run time; setfattr and
# getfattr are how users flag files without nosyncctl.
set(CPACK_DEBIAN_FILESYSTEM_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_FILESYSTEM_PACKAGE_RECOMMENDS "attr")
set(CPACK_DEBIAN_FILESYSTEM_PACKAGE_SUGGESTS "${NSF_PACKAGE_SHIM}, ${NSF_PACKAGE_DEVELOPMENT}")
set(CPACK_DEBIAN_FILESYSTEM_DESCRIPTION
"FUSE file system for persistent memory with durable no-fsync ranges
${nsf_about}
.
This package has the file system daemon (mount -t fuse.nosyncfs),
mkfs.nosyncfs, fsck.nosyncfs, nosyncctl to set and show the flags, and
examples for fstab, systemd and FUSE over io_uring.")

set(CPACK_DEBIAN_LIBRARY_PACKAGE_SECTION libs)
# The shlibs file tells dpkg-shlibdeps of a program linked with
# libnosyncfs.so.0 which package to depend on: any 0.x release may change
# the library, so this very version. (Written here rather than by CPack's
# CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS, which has no per-package switch
# and warns about every debug file it reads.) The ldconfig trigger updates
# the loader's cache when the library comes or goes.
set(library_control ${NSF_PACKAGE_STAGE}/${NSF_PACKAGE_LIBRARY})
file(WRITE ${library_control}/shlibs
     "libnosyncfs ${NSF_CLIENT_SOVERSION} ${NSF_PACKAGE_LIBRARY} ${nsf_exact_version}\n")
file(WRITE ${library_control}/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_LIBRARY_PACKAGE_CONTROL_EXTRA ${library_control}/shlibs
    ${library_control}/triggers)
# CPack 3.25 also writes a postinst and a postrm that run ldconfig, for any
# package with a library under /usr/lib, and cannot be told not to (unless
# given scripts of our own, which would do nothing). lintian warns of it,
# maintscript-calls-ldconfig; tools/package/libnosyncfs.lintian-overrides
# says why it is harmless, the trigger being there.
set(CPACK_DEBIAN_LIBRARY_DESCRIPTION
"direct access to the no-fsync extents of nosyncfs files
${nsf_about}
.
libnosyncfs maps the no-fsync extents of files on a nosyncfs mount into
the program and writes them in place, durable on return, without a FUSE
round trip; everything else goes through the file system as usual.")

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "${NSF_PACKAGE_LIBRARY} ${nsf_exact_version}")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION
"direct access to nosyncfs no-fsync extents (development files)
${nsf_about}
.
This package has what a C or C++ program needs to build against
libnosyncfs: the header nosyncfs.h, the library link and the pkg-config
file (pkg-config --cflags --libs nosyncfs).")

set(CPACK_DEBIAN_SHIM_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_SHIM_PACKAGE_DEPENDS "${NSF_PACKAGE_LIBRARY} ${nsf_exact_version}")
set(CPACK_DEBIAN_SHIM_DESCRIPTION
"LD_PRELOAD module that gives unmodified programs nosyncfs direct access
${nsf_about}
.
Loaded with LD_PRELOAD='/usr/$LIB/nosyncfs/libnosyncfs_shim.so', it serves
a program's reads, writes and syncs of no-fsync files through libnosyncfs,
so that a database's durable commits skip the FUSE round trip and the
fsync; every other call goes to the C library unchanged.")

# PACKAGE-dbgsym: Debian's section for debug symbols. The debug files are
# not programs for dpkg-shlibdeps to read.
foreach(component IN LISTS NSF_PACKAGE_DEBUG_COMPONENTS)
  string(TOUPPER ${component} upper)
  string(REGEX REPLACE "-dbgsym$" "" package ${CPACK_DEBIAN_${upper}_PACKAGE_NAME})
  set(CPACK_DEBIAN_${upper}_PACKAGE_SECTION debug)
  set(CPACK_DEBIAN_${upper}_PACKAGE_SHLIBDEPS OFF)
  set(CPACK_DEBIAN_${upper}_PACKAGE_DEPENDS "${package} ${nsf_exact_version}")
  set(CPACK_DEBIAN_${upper}_DESCRIPTION "debug symbols for ${package}
The debug information of the binaries in the ${package} package, by build
ID in /usr/lib/debug/.build-id/, where gdb finds it.")
endforeach()

include(CPack)
