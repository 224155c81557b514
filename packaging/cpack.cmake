# The Debian packages, built from an existing build tree by `cpack -G DEB` (docs/deploy.md):
# litedist (litedistd, the bundled plugins, the Studio, the systemd unit, /etc/litedist) and
# litedist-dev (the ABI headers, litedist-plugin.pc, litedist-conformance).

# Only in the package: the unit names /usr/bin/litedistd and the config lives in /etc, which
# are right for the package's /usr prefix and wrong for `cmake --install --prefix DIR`, so a
# plain install (EXCLUDE_FROM_ALL) leaves them out.
install(FILES deploy/systemd/litedistd.service DESTINATION lib/systemd/system
        COMPONENT system EXCLUDE_FROM_ALL)
install(FILES deploy/config/litedistd.json DESTINATION /etc/litedist
        COMPONENT system EXCLUDE_FROM_ALL)
# Debian's place for the licence of each package (policy 12.5).
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/litedist RENAME copyright
        COMPONENT system EXCLUDE_FROM_ALL)
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/litedist-dev RENAME copyright
        COMPONENT devdoc EXCLUDE_FROM_ALL)

set(CPACK_PACKAGE_NAME litedist)
set(CPACK_PACKAGE_VENDOR "litedist")
set(CPACK_PACKAGE_CONTACT "litedist maintainers <litedist@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local-first, replicated document database server")
set(CPACK_PACKAGE_DESCRIPTION
    "litedist accepts writes on every node, commits each one with its operation-log entry and \
replicates between nodes over HTTP. It speaks the HTTP contract of LiteDb.Distributed.")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The build tree is RelWithDebInfo: the package ships the code without its debug sections.
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_COMPONENTS_ALL server system dev devdoc)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/litedist/litedist")
# dpkg-shlibdeps turns the ELF files' libraries into Depends (libevent, jansson, libsodium, ...).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

set(CPACK_COMPONENT_SERVER_GROUP runtime)
set(CPACK_COMPONENT_SYSTEM_GROUP runtime)
set(CPACK_COMPONENT_DEV_GROUP development)
set(CPACK_COMPONENT_DEVDOC_GROUP development)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME litedist)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME litedist-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "litedist (= ${PROJECT_VERSION})")
# Maintainer scripts: systemd learns of the unit and forgets it; purge removes the data.
# conffiles: an edited /etc/litedist/litedistd.json survives upgrades.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
cpack_add_component_group(runtime DESCRIPTION "litedistd, its plugins, Studio and service")
cpack_add_component_group(development DESCRIPTION "headers and tools to build litedist plugins")
