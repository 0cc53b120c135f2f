# The Debian package (cpack -G DEB, in the build directory):
# funneld_<version>_<arch>.deb with funneld, funnelctl, the systemd unit,
# /etc/funneld/funneld.yaml (a conffile), the AIDA definition, the man pages
# and the bash completion, everything under /usr. Its Depends: are computed
# by dpkg-shlibdeps (Debian's dpkg-dev) from the libraries the binaries
# link.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME funneld)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "funneld maintainers <funneld@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "shared real-time lead funnel for marketing and sales")
set(CPACK_PACKAGE_DESCRIPTION
    "funneld takes marketing and sales events over ZeroMQ, moves each lead through the funnel stages, scores it against a shared definition of the ideal lead, publishes a lead-handoff alert the moment a lead qualifies, and keeps every event and every lead durably in LMDB. funnelctl publishes events, watches alerts and answers questions about a lead or the funnel.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
# Install as `cmake --install --prefix /usr` would, into cpack's staging
# directory (DESTDIR): the unit then names /usr/bin/funneld and
# /etc/funneld/funneld.yaml, as the package installs them.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Files under /etc that dpkg keeps when the operator edited them, and the
# maintainer scripts (systemd/deb/: daemon-reload, restart on upgrade, stop
# on removal; nothing is started on a first install).
file(WRITE ${CMAKE_BINARY_DIR}/deb/conffiles "/etc/funneld/funneld.yaml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/deb/conffiles
    ${CMAKE_SOURCE_DIR}/systemd/deb/postinst
    ${CMAKE_SOURCE_DIR}/systemd/deb/prerm
    ${CMAKE_SOURCE_DIR}/systemd/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
