SUMMARY = "edgecam: camera ingest and lowest-latency live view for a small edge box"
# The hardware watchdog drop-in (see PACKAGES below).
SUMMARY:${PN}-watchdog = "systemd RuntimeWatchdogSec drop-in: the hardware watchdog resets a hung box"
DESCRIPTION = "Ingests RTSP, V4L2 and test-pattern streams into preallocated frame \
               rings, selects the active camera (user choice or GPIO/HTTP alarm) and \
               pushes it to browsers. Runs as a systemd notify service with a \
               health-gated watchdog."
SECTION = "multimedia"

# Cargo.toml: license = "MIT OR Apache-2.0" (texts in LICENSE-MIT and LICENSE-APACHE). The
# checksum covers that line of Cargo.toml (tests/yocto.rs recomputes it).
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=6;endline=6;md5=86b31c7756a1a7962f28b62856ed4f05"

# The layer lives inside the edgecam repository (yocto/meta-edgecam), so by default the recipe
# builds that repository's own clone, branch main. Point it at a hosted copy and pin a commit
# for releases, e.g. in local.conf:
#   EDGECAM_GIT_URI:pn-edgecam = "<host>/<path>/edgecam.git"
#   EDGECAM_GIT_PROTOCOL:pn-edgecam = "https"
#   SRCREV:pn-edgecam = "<commit>"
EDGECAM_GIT_URI ?= "${@os.path.normpath(os.path.join(d.getVar('FILE_DIRNAME'), '..', '..', '..', '..'))}"
EDGECAM_GIT_PROTOCOL ?= "file"
EDGECAM_GIT_BRANCH ?= "main"
# Cargo.toml's version; bitbake appends the commit for "+git".
PV = "0.1.0+git"
SRC_URI = "git://${EDGECAM_GIT_URI};protocol=${EDGECAM_GIT_PROTOCOL};branch=${EDGECAM_GIT_BRANCH}"
SRCREV ?= "${AUTOREV}"
S = "${WORKDIR}/git"

# One crate:// line per Cargo.lock package; regenerate with
# `python3 yocto/scripts/gen-crates-inc.py` (tests/yocto.rs fails when it is stale).
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# Cargo features, one PACKAGECONFIG option each (the option names are the feature names):
# - v4l2: USB (V4L2) cameras. The `v4l` crate runs bindgen, which loads libclang from
#   meta-clang's clang-native.
# - rppal: the retired rppal GPIO backend instead of gpiocdev (the default, always built).
#   Raspberry Pi machines (meta-raspberrypi's "rpi" override) only; opt in with
#   PACKAGECONFIG:append:pn-edgecam = " rppal".
PACKAGECONFIG ??= "v4l2"
PACKAGECONFIG[v4l2] = ",,clang-native"
PACKAGECONFIG[rppal] = ",,"

def edgecam_cargo_features(d):
    features = (d.getVar('PACKAGECONFIG') or '').split()
    return '--features ' + ','.join(features) if features else ''

# Only the daemon: cargo builds the workspace's root package alone (not bench/ or testkit/).
CARGO_BUILD_FLAGS:append = " --bin edgecam ${@edgecam_cargo_features(d)}"

# bindgen (feature v4l2) parses <linux/videodev2.h> with clang-native's libclang; the target's
# tuning flags, sysroot (TOOLCHAIN_OPTIONS) and triple make it read the target's headers.
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
BINDGEN_EXTRA_CLANG_ARGS = "${HOST_CC_ARCH}${TOOLCHAIN_OPTIONS} --target=${TARGET_SYS}"
export BINDGEN_EXTRA_CLANG_ARGS
# openh264 is compiled from C++ source by the cc crate: cargo_common's oe_cargo_fix_env exports
# CC/CXX/AR (and TARGET_CXX) for the target toolchain before do_compile, nothing to add here.

python edgecam_check_rppal() {
    if bb.utils.contains('PACKAGECONFIG', 'rppal', True, False, d) and \
            'rpi' not in (d.getVar('MACHINEOVERRIDES') or '').split(':'):
        bb.fatal("PACKAGECONFIG 'rppal' is only for Raspberry Pi machines (meta-raspberrypi); "
                 "%s is not one. gpiocdev, the default backend, works on every board." % d.getVar('MACHINE'))
}
edgecam_check_rppal[doc] = "Refuse the rppal GPIO backend on machines that are not a Raspberry Pi"
do_configure[prefuncs] += "edgecam_check_rppal"

# scarthgap ships Rust 1.75; edgecam (edition 2024) needs Cargo.toml's rust-version. Say so
# plainly instead of letting cargo fail on the manifest or the lock file format.
edgecam_check_rust_version() {
    need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)"/\1/p' ${S}/Cargo.toml)
    have=$(rustc --version | cut -d' ' -f2)
    if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
        bbfatal "edgecam needs Rust >= $need, the build has rustc $have. Add meta-lts-mixins (branch scarthgap/rust) for a current Rust; see meta-edgecam/README.md."
    fi
}
edgecam_check_rust_version[doc] = "Stop with a clear message when rustc is older than Cargo.toml's rust-version"
do_compile[prefuncs] += "edgecam_check_rust_version"

# The default config for the machine's board (board/<name>/config.toml). Override with
# EDGECAM_BOARD = "<folder under board/>" in local.conf.
def edgecam_board(d):
    machine = d.getVar('MACHINE') or ''
    if 'rpi' not in (d.getVar('MACHINEOVERRIDES') or '').split(':'):
        return 'generic-aarch64'
    if machine.startswith('raspberrypi5'):
        return 'rpi5'
    if machine.startswith('raspberrypi4') or machine == 'raspberrypi-armv8':
        return 'rpi4'
    return 'rpi3-armv7'

EDGECAM_BOARD ?= "${@edgecam_board(d)}"
# The default config (and the rppal option) depend on the machine.
PACKAGE_ARCH = "${MACHINE_ARCH}"

# The service user and its groups, as in systemd/sysusers.d/edgecam.conf. useradd creates
# them at build time, which a read-only rootfs needs (systemd-sysusers cannot write /etc).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio; --system video"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/edgecam --no-create-home \
                       --shell ${base_sbindir}/nologin --user-group --groups gpio,video edgecam"

SYSTEMD_SERVICE:${PN} = "edgecam.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    # cargo_do_install put the binary in ${bindir}, where ExecStart= expects it.
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/edgecam.service ${D}${systemd_system_unitdir}/edgecam.service

    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/sysusers.d/edgecam.conf ${D}${nonarch_libdir}/sysusers.d/edgecam.conf
    install -m 0644 ${S}/systemd/tmpfiles.d/edgecam.conf ${D}${nonarch_libdir}/tmpfiles.d/edgecam.conf

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/systemd/udev/60-edgecam-gpio.rules \
        ${D}${nonarch_base_libdir}/udev/rules.d/60-edgecam-gpio.rules

    install -d ${D}${nonarch_libdir}/systemd/system.conf.d
    install -m 0644 ${S}/systemd/system.conf.d/50-edgecam-watchdog.conf \
        ${D}${nonarch_libdir}/systemd/system.conf.d/50-edgecam-watchdog.conf

    # /etc/edgecam as tmpfiles.d declares it (0750 root:edgecam), with the board's config.
    install -d -m 0750 ${D}${sysconfdir}/edgecam
    install -m 0640 ${S}/board/${EDGECAM_BOARD}/config.toml ${D}${sysconfdir}/edgecam/config.toml
    chown -R root:edgecam ${D}${sysconfdir}/edgecam

    # The state directory; on edgecam-image a persistent partition is mounted here.
    install -d -m 0750 ${D}${localstatedir}/lib/edgecam
    chown edgecam:edgecam ${D}${localstatedir}/lib/edgecam

    # The unit's Documentation= points here.
    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/README.md ${D}${docdir}/${BPN}/README.md
}

# The hardware watchdog drop-in is a package of its own: it changes PID 1's behaviour for the
# whole box, so an image can leave it out (edgecam-image installs it).
PACKAGES =+ "${PN}-watchdog"

FILES:${PN} += "\
    ${nonarch_libdir}/sysusers.d/edgecam.conf \
    ${nonarch_libdir}/tmpfiles.d/edgecam.conf \
    ${nonarch_base_libdir}/udev/rules.d/60-edgecam-gpio.rules \
"
FILES:${PN}-watchdog += "${nonarch_libdir}/systemd/system.conf.d/50-edgecam-watchdog.conf"
CONFFILES:${PN} = "${sysconfdir}/edgecam/config.toml"
RRECOMMENDS:${PN} += "${PN}-watchdog"
