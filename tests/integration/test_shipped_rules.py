"""The rule files sidewatch ships (rules/*.yml) and their unit tests
(rules/tests/*_test.yml, promtool's format): Prometheus's own promtool 2.42
must accept and pass them, and so must `sidewatch check`/`test rules`, so the
shipped rules mean the same thing in both."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, REPO, skip_or_fail

RULES = os.path.join(REPO, "rules")
RULE_FILES = sorted(glob.glob(os.path.join(RULES, "*.yml")))
TEST_FILES = sorted(glob.glob(os.path.join(RULES, "tests", "*_test.yml")))


def need_promtool():
    if not shutil.which("promtool"):
        skip_or_fail("promtool not found (Debian package prometheus, installed by scripts/install-deps.sh)")


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_every_rule_file_has_a_unit_test():
    assert RULE_FILES, f"no rule files in {RULES}"
    names = {os.path.basename(f)[: -len(".yml")] for f in RULE_FILES}
    tests = {os.path.basename(f)[: -len("_test.yml")] for f in TEST_FILES}
    assert names == tests, f"rule files without a test: {names - tests}, tests without a rule file: {tests - names}"


def test_every_alert_is_tested_firing():
    """Each alert of rules/*.yml appears in some alert_rule_test with an
    expected firing alert (exp_alerts not empty), not only as 'no alert'."""
    alerts = set()
    for f in RULE_FILES:
        alerts |= set(re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", open(f).read(), re.M))
    assert alerts
    fired = set()
    for f in TEST_FILES:
        text = open(f).read()
        for m in re.finditer(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\S*)", text):
            if m.group(2) != "[]":
                fired.add(m.group(1))
    assert alerts <= fired, f"alerts never expected to fire in rules/tests: {sorted(alerts - fired)}"


def test_promtool_check_rules():
    need_promtool()
    p = run(["promtool", "check", "rules", *RULE_FILES])
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("SUCCESS") == len(RULE_FILES), p.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=os.path.basename)
def test_promtool_test_rules(test_file):
    need_promtool()
    p = run(["promtool", "test", "rules", test_file])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout, p.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=os.path.basename)
def test_sidewatch_test_rules(test_file):
    p = run([BIN, "test", "rules", test_file])
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert m, f"no 'N passed, N failed' line:\n{p.stdout}{p.stderr}"
    assert int(m.group(1)) > 0 and int(m.group(2)) == 0, p.stdout + p.stderr
