"""The npm package as a user gets it: `npm pack` of client-wasm/pkg (built by
scripts/build-wasm.sh), installed from the tarball in a scratch project, imported by Node
(web and bundler builds), and its TypeScript declarations checked with `tsc --strict`."""

import json
import shutil
import subprocess

from conftest import ROOT

PKG = ROOT / "client-wasm" / "pkg"
NPM = ROOT / "client-wasm" / "npm"


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_packed_package_installs_imports_and_type_checks(tmp_path):
    assert (PKG / "package.json").exists(), "client-wasm/pkg is missing: run scripts/build-wasm.sh"
    tarball = run(["npm", "pack", "--silent", "--pack-destination", str(tmp_path)], PKG).strip().splitlines()[-1]
    project = tmp_path / "dashboard"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "dashboard", "private": True, "type": "module"}))
    run(["npm", "install", "--no-audit", "--no-fund", "--offline", str(tmp_path / tarball)], project)
    installed = json.loads((project / "node_modules" / "midge-mqtt" / "package.json").read_text())
    assert installed["name"] == "midge-mqtt"
    for path in ["midge_mqtt.js", "midge_mqtt_bg.wasm", "midge_mqtt.d.ts", "bundler/midge_mqtt.js", "bundler/midge_mqtt.d.ts"]:
        assert (project / "node_modules" / "midge-mqtt" / path).exists(), path

    shutil.copy(NPM / "smoke.mjs", project)
    out = run(["node", "--experimental-wasm-modules", "--no-warnings", "smoke.mjs"], project)
    assert "smoke: web build ok" in out and "smoke: bundler build ok" in out

    shutil.copy(NPM / "smoke.ts", project)
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    run([str(tsc), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2022,esnext.disposable,dom", "smoke.ts"], project)
