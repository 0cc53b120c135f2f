# Install the files that name the paths of the install: the systemd unit
# (which funneld, which config file), the example config (where the AIDA
# definition is) and the bash completion of funnelctl (which config and
# definition to read stage and persona names from).
#
# Run by `cmake --install` and by cpack (install(CODE) in CMakeLists.txt),
# so the paths are those of the install itself: `cmake --install build
# --prefix /usr` gets /usr/bin/funneld and /etc/funneld/funneld.yaml even
# when the build was configured for /usr/local.
#
# In: CMAKE_INSTALL_PREFIX (the install's), and from CMakeLists.txt
# FUNNELD_SOURCE_DIR, FUNNELD_BINARY_DIR, FUNNELD_BINDIR, FUNNELD_DATADIR,
# FUNNELD_DOCDIR, FUNNELD_SYSCONFDIR (GNUInstallDirs' values, relative or
# absolute) and FUNNELD_SYSTEMD_UNIT_DIR (empty: PREFIX/lib/systemd/system,
# which systemd searches for /usr and /usr/local).

set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" prefix "${prefix}")

function(s_full rel out)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  else()
    set(${out} "${prefix}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

s_full("${FUNNELD_BINDIR}" bindir)
s_full("${FUNNELD_DATADIR}" datadir)
s_full("${FUNNELD_DOCDIR}" docdir)
# As GNUInstallDirs does for its FULL_ paths: a /usr (or /) install keeps
# its configuration in /etc, not /usr/etc.
if(IS_ABSOLUTE "${FUNNELD_SYSCONFDIR}")
  set(sysconfdir "${FUNNELD_SYSCONFDIR}")
elseif(prefix STREQUAL "/usr" OR prefix STREQUAL "")
  set(sysconfdir "/${FUNNELD_SYSCONFDIR}")
else()
  set(sysconfdir "${prefix}/${FUNNELD_SYSCONFDIR}")
endif()
if(FUNNELD_SYSTEMD_UNIT_DIR)
  set(unitdir "${FUNNELD_SYSTEMD_UNIT_DIR}")
else()
  set(unitdir "${prefix}/lib/systemd/system")
endif()

set(FUNNELD_INSTALL_FUNNELD "${bindir}/funneld")
set(FUNNELD_INSTALL_FUNNELCTL "${bindir}/funnelctl")
set(FUNNELD_INSTALL_CONFIG "${sysconfdir}/funneld/funneld.yaml")
set(FUNNELD_INSTALL_DEFINITION "${datadir}/funneld/aida.yaml")
set(FUNNELD_INSTALL_README "${docdir}/README.md")

# One directory per destination: installs to different prefixes (the test
# suite runs them in parallel) never share a configured file.
string(MD5 dest "$ENV{DESTDIR}|${prefix}|${sysconfdir}|${unitdir}")
set(out "${FUNNELD_BINARY_DIR}/install-configured/${dest}")
configure_file("${FUNNELD_SOURCE_DIR}/systemd/funneld.service.in"
               "${out}/funneld.service" @ONLY)
configure_file("${FUNNELD_SOURCE_DIR}/systemd/funneld.yaml"
               "${out}/funneld.yaml" @ONLY)
configure_file("${FUNNELD_SOURCE_DIR}/tools/funnelctl.bash-completion"
               "${out}/funnelctl" @ONLY)

file(INSTALL DESTINATION "${unitdir}" TYPE FILE FILES "${out}/funneld.service")
file(INSTALL DESTINATION "${datadir}/bash-completion/completions" TYPE FILE
     FILES "${out}/funnelctl")
# An operator's edited config is kept; the package manager (a conffile in
# the .deb) handles upgrades of it there.
if(EXISTS "$ENV{DESTDIR}${FUNNELD_INSTALL_CONFIG}")
  message(STATUS "Kept (exists): $ENV{DESTDIR}${FUNNELD_INSTALL_CONFIG}")
else()
  file(INSTALL DESTINATION "${sysconfdir}/funneld" TYPE FILE
       FILES "${out}/funneld.yaml")
endif()
