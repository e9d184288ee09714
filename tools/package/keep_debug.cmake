# Run at install time (install(CODE) in tools/package/install.cmake) for
# one built binary, nsf_binary: writes its debug information where gdb and
# debuginfod look for it by build ID,
#   PREFIX/lib/debug/.build-id/XX/REST.debug
# as Debian's -dbgsym packages hold it. The binary in the build tree keeps
# its symbols; the installed copy is stripped by the install step itself
# (cpack sets CPACK_STRIP_FILES), and stripping keeps the build ID.

execute_process(COMMAND readelf --notes "${nsf_binary}"
                OUTPUT_VARIABLE notes COMMAND_ERROR_IS_FATAL ANY)
if(NOT notes MATCHES "Build ID: ([0-9a-f][0-9a-f])([0-9a-f]+)")
  message(FATAL_ERROR "${nsf_binary} has no build ID (linked without --build-id?)")
endif()
set(dir "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/debug/.build-id/${CMAKE_MATCH_1}")
set(debug "${dir}/${CMAKE_MATCH_2}.debug")
file(MAKE_DIRECTORY "${dir}")
message(STATUS "Installing: ${debug}")
# Compressed as dh_strip does: the daemon's take 10.8 MB instead of 29.6 MB.
execute_process(COMMAND objcopy --only-keep-debug --compress-debug-sections
                        "${nsf_binary}" "${debug}" COMMAND_ERROR_IS_FATAL ANY)
# objcopy keeps the binary's mode; debug files are data, 0644 as Debian ships them.
file(CHMOD "${debug}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
