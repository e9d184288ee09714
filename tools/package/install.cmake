# What `cmake --install` puts where, and into which Debian package each
# file goes (its COMPONENT; tools/package/cpack.cmake names the packages):
#
#   filesystem   nosyncfs         the daemon, mkfs, fsck, nosyncctl, man pages,
#                                 the docs and the conf/ examples
#   library      libnosyncfs0     libnosyncfs.so.0, the direct-access client
#   development  libnosyncfs-dev  nosyncfs.h, the libnosyncfs.so link, nosyncfs.pc
#   shim         nosyncfs-shim    the LD_PRELOAD module, LIBDIR/nosyncfs/
#
# and, in a build with debug information (RelWithDebInfo, the default), a
# COMPONENT_dbgsym for each of filesystem, library and shim: the debug
# symbols of its binaries, in the PACKAGE-dbgsym package. Those are
# installed only when asked for by name (cpack does), not by a plain
# `cmake --install`, which leaves the binaries unstripped instead.
#
# Each package has its own /usr/share/doc/PACKAGE with the copyright file
# and the changelog, as Debian wants of every package.

set(NSF_PACKAGE_FILESYSTEM nosyncfs)
# Debian names a library's package after its soname: libnosyncfs.so.0.
get_target_property(NSF_CLIENT_SOVERSION nosyncfs_client SOVERSION)
set(NSF_PACKAGE_LIBRARY libnosyncfs${NSF_CLIENT_SOVERSION})
set(NSF_PACKAGE_DEVELOPMENT libnosyncfs-dev)
set(NSF_PACKAGE_SHIM nosyncfs-shim)
set(NSF_PACKAGE_COMPONENTS filesystem library development shim)

set(NSF_PACKAGE_DEBUG_COMPONENTS)
if(CMAKE_BUILD_TYPE MATCHES "^(RelWithDebInfo|Debug)$")
  set(NSF_PACKAGE_DEBUG_COMPONENTS filesystem_dbgsym library_dbgsym shim_dbgsym)
endif()

# The Debian package of an install component: NSF_PACKAGE_<COMPONENT>, and
# PACKAGE-dbgsym for COMPONENT_dbgsym.
function(nsf_package_of component out)
  string(REGEX REPLACE "_dbgsym$" "" owner ${component})
  string(TOUPPER ${owner} upper)
  set(package ${NSF_PACKAGE_${upper}})
  if(NOT owner STREQUAL component)
    string(APPEND package -dbgsym)
  endif()
  set(${out} ${package} PARENT_SCOPE)
endfunction()

# The debug symbols of TARGETS, for COMPONENT_dbgsym
# (tools/package/keep_debug.cmake).
function(nsf_install_debug_symbols component)
  if(NOT ${component}_dbgsym IN_LIST NSF_PACKAGE_DEBUG_COMPONENTS)
    return()
  endif()
  foreach(target IN LISTS ARGN)
    install(CODE "set(nsf_binary \"$<TARGET_FILE:${target}>\")
                  include(\"${PROJECT_SOURCE_DIR}/tools/package/keep_debug.cmake\")"
            COMPONENT ${component}_dbgsym EXCLUDE_FROM_ALL)
  endforeach()
endfunction()

# Files made for the install (compressed, generated) wait here.
set(NSF_PACKAGE_STAGE ${CMAKE_BINARY_DIR}/package)
file(MAKE_DIRECTORY ${NSF_PACKAGE_STAGE}/man)

# Compresses SOURCE (relative to the source tree) into OUTPUT at build time,
# as Debian wants man pages and changelogs: gzip -9n, no name or time in
# the header, so that a rebuild gives the same bytes.
function(nsf_gzip source output)
  add_custom_command(OUTPUT ${output}
    COMMAND sh -c "gzip -9nc \"$0\" > \"$1\"" ${PROJECT_SOURCE_DIR}/${source} ${output}
    DEPENDS ${source} VERBATIM)
endfunction()

# The daemon and nosyncctl in bin/ (mount.fuse3 runs the daemon by name for
# `mount -t fuse.nosyncfs`); mkfs.nosyncfs and fsck.nosyncfs in sbin/,
# where mkfs(8) and fsck(8) look.
install(TARGETS nosyncfs nosyncctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT filesystem)
install(TARGETS mkfs.nosyncfs fsck.nosyncfs RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR}
        COMPONENT filesystem)
nsf_install_debug_symbols(filesystem nosyncfs nosyncctl mkfs.nosyncfs fsck.nosyncfs)
# fsck(8) runs fsck.TYPE with the type of the device's fstab line,
# fuse.nosyncfs; and it cannot be given `-t nosyncfs`, which it reads as
# "not syncfs". So fsck.fuse.nosyncfs is fsck.nosyncfs too, man page and all.
file(CREATE_LINK fsck.nosyncfs ${NSF_PACKAGE_STAGE}/fsck.fuse.nosyncfs SYMBOLIC)
install(FILES ${NSF_PACKAGE_STAGE}/fsck.fuse.nosyncfs DESTINATION ${CMAKE_INSTALL_SBINDIR}
        COMPONENT filesystem)

# Man pages, compressed.
set(man_sources docs/man/nosyncfs.8 docs/man/mkfs.nosyncfs.8 docs/man/fsck.nosyncfs.8
                docs/man/nosyncctl.1)
set(man_pages)
foreach(source IN LISTS man_sources)
  get_filename_component(name ${source} NAME)
  set(page ${NSF_PACKAGE_STAGE}/man/${name}.gz)
  nsf_gzip(${source} ${page})
  list(APPEND man_pages ${page})
  string(REGEX MATCH "[0-9]$" section ${name})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section} COMPONENT filesystem)
endforeach()
file(CREATE_LINK fsck.nosyncfs.8.gz ${NSF_PACKAGE_STAGE}/man/fsck.fuse.nosyncfs.8.gz SYMBOLIC)
install(FILES ${NSF_PACKAGE_STAGE}/man/fsck.fuse.nosyncfs.8.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT filesystem)

install(FILES README.md docs/semantics.md docs/architecture.md journal/FORMAT.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT filesystem)
install(DIRECTORY conf/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT filesystem)

# libnosyncfs: the versioned library in the runtime package, the
# unversioned link that `-lnosyncfs` finds in the development package.
install(TARGETS nosyncfs_client
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library
                NAMELINK_COMPONENT development)
nsf_install_debug_symbols(library nosyncfs_client)
# Why lintian's warning about its maintainer scripts does not apply
# (tools/package/cpack.cmake).
install(FILES tools/package/libnosyncfs.lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
        RENAME ${NSF_PACKAGE_LIBRARY} COMPONENT library)
install(FILES client/nosyncfs.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)
# nosyncfs.pc is made at install time, for the prefix of the install step:
# cpack installs into /usr whatever CMAKE_INSTALL_PREFIX was at configure time.
install(CODE "
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/client/nosyncfs.pc.in\"
                 \"${NSF_PACKAGE_STAGE}/nosyncfs.pc\" @ONLY)" COMPONENT development)
install(FILES ${NSF_PACKAGE_STAGE}/nosyncfs.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT development)

# The shim is a module for LD_PRELOAD, not a library anyone links against:
# no soname, so it stays out of the linker's directories, in a private one
# (LD_PRELOAD='/usr/$LIB/nosyncfs/libnosyncfs_shim.so'; ld.so expands $LIB
# to lib/x86_64-linux-gnu). Its RUNPATH $ORIGIN/.. finds libnosyncfs.so.0
# one directory up, also where ldconfig has not run (a /usr/local install).
install(TARGETS nosyncfs_shim LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/nosyncfs
        COMPONENT shim)
nsf_install_debug_symbols(shim nosyncfs_shim)

# The copyright file in Debian's machine-readable format, its licence text
# (Expat, Debian's name for this MIT licence) taken from LICENSE; the
# changelog, whose newest entry must be this version (lintian and
# apt-listchanges read it).
file(READ ${PROJECT_SOURCE_DIR}/LICENSE license)
string(REGEX REPLACE "^.*\n(Permission is hereby)" "\\1" license "${license}")
string(REGEX REPLACE "\n+$" "" license "${license}")
string(REGEX REPLACE "\n\n" "\n.\n" license "${license}")
string(REGEX REPLACE "\n" "\n " license "${license}")
file(READ ${PROJECT_SOURCE_DIR}/tools/package/copyright.in copyright)
string(REPLACE "@LICENSE_TEXT@" " ${license}" copyright "${copyright}")
file(WRITE ${NSF_PACKAGE_STAGE}/copyright "${copyright}")

file(STRINGS ${PROJECT_SOURCE_DIR}/tools/package/changelog changelog_top LIMIT_COUNT 1)
if(NOT changelog_top MATCHES "^nosyncfs \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "tools/package/changelog: the newest entry is not version "
                      "${PROJECT_VERSION}: ${changelog_top}")
endif()
set(changelog ${NSF_PACKAGE_STAGE}/changelog.gz)
nsf_gzip(tools/package/changelog ${changelog})
add_custom_target(package_files ALL DEPENDS ${man_pages} ${changelog})

foreach(component IN LISTS NSF_PACKAGE_COMPONENTS NSF_PACKAGE_DEBUG_COMPONENTS)
  nsf_package_of(${component} package)
  set(exclude)
  if(component IN_LIST NSF_PACKAGE_DEBUG_COMPONENTS)
    set(exclude EXCLUDE_FROM_ALL)
  endif()
  install(FILES ${NSF_PACKAGE_STAGE}/copyright ${changelog}
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package}
          COMPONENT ${component} ${exclude})
endforeach()
