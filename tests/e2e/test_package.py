"""The Debian package: `cpack -G DEB` builds funneld_<version>_<arch>.deb;
dpkg installs it into a scratch root (whose package database is a copy of
this machine's, so Depends: are checked against the installed libraries),
the installed funneld and funnelctl run, an edited conffile survives a
reinstall, and purging removes every file."""

import os
import re
import shutil
import subprocess

import pytest

BUILD = os.environ.get("FUNNELD_BUILD_DIR", "build")
FUNNELD_BIN = os.environ.get("FUNNELD_BIN", "funneld")

EXPECTED = [
    "./usr/bin/funneld",
    "./usr/bin/funnelctl",
    "./usr/lib/systemd/system/funneld.service",
    "./etc/funneld/funneld.yaml",
    "./usr/share/funneld/aida.yaml",
    "./usr/share/man/man8/funneld.8.gz",
    "./usr/share/man/man1/funnelctl.1.gz",
    "./usr/share/man/man5/funneld.yaml.5.gz",
    "./usr/share/man/man5/funnel-definition.5.gz",
    "./usr/share/bash-completion/completions/funnelctl",
    "./usr/share/doc/funneld/README.md",
]


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, "%s: %s%s" % (" ".join(argv), r.stdout, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
        if shutil.which(tool) is None:
            pytest.fail("%s not found: install Debian's packages cmake and dpkg-dev "
                        "(tools/quickstart.sh does)" % tool)
    out = tmp_path_factory.mktemp("cpack")
    # -B: cpack stages and writes into out, never into the build tree.
    _run(["cpack", "-G", "DEB", "-B", str(out), "--config",
          os.path.join(BUILD, "CPackConfig.cmake")])
    debs = sorted(out.glob("*.deb"))
    assert len(debs) == 1, list(out.iterdir())
    return debs[0]


def test_the_package_is_named_and_described_as_debian_expects(deb):
    version = _run([FUNNELD_BIN, "--version"]).split()[-1]
    arch = _run(["dpkg", "--print-architecture"]).strip()
    assert deb.name == "funneld_%s_%s.deb" % (version, arch)
    fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture",
                   "Depends"])
    assert "Package: funneld\n" in fields and ("Version: %s\n" % version) in fields
    assert "Architecture: %s\n" % arch in fields
    # Computed by dpkg-shlibdeps from the libraries the binaries link.
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    for lib in ("libc6", "libzmq5", "liblmdb0", "libevent-2.1-7", "libcyaml1",
                "libprotobuf-c1", "libjansson4", "libsystemd0", "libxxhash0"):
        assert re.search(r"(^|, )%s( |,|$)" % re.escape(lib), depends), depends
    ctrl = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"],
                          capture_output=True, text=True)
    assert ctrl.returncode == 0 and ctrl.stdout.split() == ["/etc/funneld/funneld.yaml"], \
        ctrl.stdout + ctrl.stderr
    # The maintainer scripts (systemd/deb/), executable and valid sh.
    ctrl_tar = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)],
                              capture_output=True, timeout=60).stdout
    members = subprocess.run(["tar", "-tvf", "-"], input=ctrl_tar, capture_output=True,
                             timeout=60).stdout.decode()
    for script in ("postinst", "prerm", "postrm"):
        m = re.search(r"^(\S+) .* \./%s$" % script, members, re.M)
        assert m and m.group(1) == "-rwxr-xr-x", members
        text = subprocess.run(["dpkg-deb", "-I", str(deb), script], capture_output=True,
                              text=True).stdout
        assert "DPKG_ROOT" in text and "systemctl" in text, text
        r = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    listing = _run(["dpkg-deb", "-c", str(deb)])
    files = {l.split()[-1] for l in listing.splitlines() if not l.endswith("/")}
    assert set(EXPECTED) <= files, set(EXPECTED) - files
    # Stripped binaries, and nothing from the build or test tree.
    assert not any("test" in f or "bench" in f or "fuzz" in f for f in files), files


def _scratch_root(tmp_path):
    """An empty root with a copy of this machine's dpkg database."""
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    shutil.copyfile("/var/lib/dpkg/status", admin / "status")
    (admin / "available").touch()
    return root


def _dpkg(root, *args):
    argv = ["dpkg", "--root=%s" % root, "--log=/dev/null", "--force-script-chrootless",
            *args]
    if os.geteuid() != 0:
        argv.insert(1, "--force-not-root")
    return _run(argv, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def test_dpkg_installs_runs_keeps_the_conffile_and_purges(deb, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i into a scratch root needs root (the CI runs as root)")
    root = _scratch_root(tmp_path)
    _dpkg(root, "-i", str(deb))
    status = _run(["dpkg-query", "--admindir=%s" % (root / "var/lib/dpkg"), "-W",
                   "-f=${Status} ${Version}", "funneld"])
    assert status.startswith("install ok installed "), status

    for f in EXPECTED:
        assert (root / f).is_file(), f
    funneld, funnelctl = root / "usr/bin/funneld", root / "usr/bin/funnelctl"
    conf = root / "etc/funneld/funneld.yaml"
    version = _run([FUNNELD_BIN, "--version"]).split()[-1]
    assert _run([str(funnelctl), "--version"]).strip() == "funnelctl %s" % version
    assert _run([str(funneld), "--version"]).strip() == "funneld %s" % version
    dump = _run([str(funneld), "--config", str(conf), "--dump-config"])
    assert 'state_dir: "/var/lib/funneld"' in dump, dump
    # The unit runs the installed binary on the installed config.
    unit = (root / "usr/lib/systemd/system/funneld.service").read_text()
    assert re.search(r"^ExecStart=/usr/bin/funneld --config /etc/funneld/funneld.yaml ",
                     unit, re.M), unit

    # An edited conffile is the operator's: a reinstall keeps it.
    edited = re.sub(r"^log_level: .*$", "log_level: debug", conf.read_text(), flags=re.M)
    assert "log_level: debug" in edited
    conf.write_text(edited)
    _dpkg(root, "--force-confold", "-i", str(deb))
    assert conf.read_text() == edited
    assert "log_level: \"debug\"" in _run([str(funneld), "--config", str(conf),
                                           "--dump-config"])

    _dpkg(root, "--purge", "funneld")
    left = [p for p in root.rglob("*") if p.is_file()
            and not str(p).startswith(str(root / "var"))]
    assert left == [], left
    r = subprocess.run(["dpkg-query", "--admindir=%s" % (root / "var/lib/dpkg"), "-W",
                        "funneld"], capture_output=True, text=True)
    assert r.returncode != 0 or r.stdout.strip() == "funneld", r.stdout
