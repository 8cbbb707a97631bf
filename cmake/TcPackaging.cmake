# SPDX-License-Identifier: Apache-2.0
# Install rules and the Debian package (`cpack -G DEB` in a build directory; scripts/package
# does it from the release preset). Layout: binaries in /usr/bin, the node's configuration in
# /etc/tcbroker (a conffile), the systemd unit, and the operator docs.
include(GNUInstallDirs)

install(TARGETS tcbroker tcctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET tc-merge)
  install(TARGETS tc-merge RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/packaging/tcbroker.toml
        DESTINATION /etc/tcbroker PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/tcbroker.service
        DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operator-guide.md ${PROJECT_SOURCE_DIR}/docs/admin-api.md
              ${PROJECT_SOURCE_DIR}/docs/merge-tool.md ${PROJECT_SOURCE_DIR}/docs/architecture.md
              ${PROJECT_SOURCE_DIR}/docs/grafana-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tcbroker)
set(CPACK_PACKAGE_VENDOR "tcbroker")
set(CPACK_PACKAGE_CONTACT "tcbroker maintainers <tcbroker@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "persistent-chat high-availability XMPP broker (multi-user chat with a durable archive)")
set(CPACK_PACKAGE_DESCRIPTION
    "tcbroker hosts XMPP multi-user chat rooms for standard clients, keeps every room and its \
archive in SQL (PostgreSQL, SQLite or ODBC) shared by a pair of nodes, and fails a node's users \
and rooms over to its peer. Includes tcctl (administration) and tc-merge (database merges).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, openssl")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian ships stripped binaries (the build keeps its debug information).
set(CPACK_STRIP_FILES ON)
include(CPack)
