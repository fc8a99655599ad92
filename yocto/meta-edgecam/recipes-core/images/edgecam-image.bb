SUMMARY = "edgecam appliance image: read-only rootfs, edgecam, hardware watchdog"
DESCRIPTION = "core-image-minimal plus edgecam. The root filesystem is mounted \
               read-only; edgecam's state (/var/lib/edgecam) lives on a partition of \
               its own; systemd arms the hardware watchdog."
LICENSE = "MIT"

# core-image-minimal.bb (scarthgap), spelled out rather than required (a lint can check it
# then): IMAGE_INSTALL, IMAGE_LINGUAS and the rootfs sizes below are its settings.
IMAGE_INSTALL = "packagegroup-core-boot ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_LINGUAS = ""

# edgecam-watchdog: RuntimeWatchdogSec for PID 1 (the hardware watchdog).
# e2fsprogs-e2fsck: the data partition is checked (fstab pass 2) before it is mounted.
IMAGE_INSTALL:append = " edgecam edgecam-watchdog e2fsprogs-e2fsck"

IMAGE_FEATURES += "read-only-rootfs"

REQUIRED_DISTRO_FEATURES = "systemd"

inherit core-image features_check

IMAGE_ROOTFS_SIZE ?= "8192"
# core-image-minimal adds 4 MiB for systemd images; this image is always one.
IMAGE_ROOTFS_EXTRA_SPACE:append = " + 4096"

# Persistent state. / is read-only and /var/lib is a tmpfs overlay (volatile-binds), so the
# state would not survive a reboot; a partition labelled EDGECAM_DATA_LABEL (ext4, made by
# the wic layout, see wic/) is mounted on /var/lib/edgecam:
# - after var-volatile-lib.service, or the /var/lib overlay would hide it;
# - fsck'd at boot (pass 2); ext4's journal plus edgecam's temp-file/fsync/rename writes keep
#   state.bin and the live config whole through a power cut, and nothing else writes there;
# - nofail: a missing or broken partition does not stop the boot (the box stays reachable),
#   but edgecam, which requires the mount (drop-in below), then stays down instead of
#   silently keeping its state on tmpfs.
EDGECAM_DATA_LABEL ?= "edgecam-data"
EDGECAM_DATA_MOUNT_OPTIONS ?= "defaults,noatime,nodev,nosuid,noexec,nofail,x-systemd.after=var-volatile-lib.service,x-systemd.device-timeout=30s"

edgecam_image_data_partition() {
    printf 'LABEL=%s\t%s\text4\t%s\t0\t2\n' "${EDGECAM_DATA_LABEL}" \
        "${localstatedir}/lib/edgecam" "${EDGECAM_DATA_MOUNT_OPTIONS}" \
        >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
    install -d ${IMAGE_ROOTFS}${sysconfdir}/systemd/system/edgecam.service.d
    printf '[Unit]\nRequiresMountsFor=%s\n' "${localstatedir}/lib/edgecam" \
        > ${IMAGE_ROOTFS}${sysconfdir}/systemd/system/edgecam.service.d/data-partition.conf
}
edgecam_image_data_partition[doc] = "Mount the data partition on /var/lib/edgecam and make edgecam require it"
ROOTFS_POSTPROCESS_COMMAND += "edgecam_image_data_partition;"

# Raspberry Pi: boot, root and the data partition (wic/edgecam-sdimage-raspberrypi.wks).
# Other machines: add the data partition line from that file to the machine's .wks.
WKS_FILE:rpi = "edgecam-sdimage-raspberrypi.wks"

# The BCM watchdog needs dtparam=watchdog=on in config.txt, which meta-raspberrypi's
# rpi-config writes from RPI_EXTRA_CONFIG, a global setting: `require conf/edgecam-rpi.inc`
# in local.conf. Warn when it is missing rather than ship a box whose watchdog never fires.
python edgecam_image_check_rpi_watchdog() {
    if 'rpi' in (d.getVar('MACHINEOVERRIDES') or '').split(':') and \
            'dtparam=watchdog=on' not in (d.getVar('RPI_EXTRA_CONFIG') or ''):
        bb.warn("edgecam-image on %s: RPI_EXTRA_CONFIG lacks dtparam=watchdog=on, so the "
                "hardware watchdog is off. Add 'require conf/edgecam-rpi.inc' to local.conf."
                % d.getVar('MACHINE'))
}
edgecam_image_check_rpi_watchdog[doc] = "Warn when a Raspberry Pi build leaves the SoC watchdog off"
do_rootfs[prefuncs] += "edgecam_image_check_rpi_watchdog"
