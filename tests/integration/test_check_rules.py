"""`sidewatch check rules` against the real `promtool check rules` (Debian's
promtool 2.42) on every check-rules input of the conformance folders: the
same exit code and the same Checking/SUCCESS/FAILED lines, with and without
--lint-fatal and --lint=none.

Where Prometheus 3.x changed the behaviour since 2.42, sidewatch follows 3.x
and the difference is listed in THREE_X (and asserted both ways, so the list
cannot go stale silently)."""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import BIN, REPO

SHARED = os.environ.get("SIDEWATCH_SHARED", os.path.join(REPO, "..", "shared"))
CONF = os.path.join(SHARED, "conformance")
PROMTOOL = shutil.which("promtool")

UNITTEST_INPUTS = ["rules.yml", "rules-bad.yml", "rules_duplicates.yml",
                   "prometheus-rules.lint.yml", "rules_extrafields.yml"]


def inputs():
    files = [os.path.join(CONF, "rules-unittest", f) for f in UNITTEST_INPUTS]
    files += sorted(glob.glob(os.path.join(CONF, "rules-unittest", "bad-rules-*.yml")))
    files += sorted(f for f in glob.glob(os.path.join(CONF, "rulefmt", "*"))
                    if not f.endswith(".tsv"))
    return files


# Prometheus 3 validates label, annotation and metric names as UTF-8; promtool
# 2.42 used the legacy [a-zA-Z_][a-zA-Z0-9_]* scheme and refuses these files.
THREE_X = {
    "utf-8_lname.good.yaml": "UTF-8 label names are valid in Prometheus 3",
    "utf-8_annotation.good.yaml": "UTF-8 annotation names are valid in Prometheus 3",
    "legacy_validation_annotation.bad.yaml":
        "bad only under legacy validation; promtool 3 checks rules with UTF-8 validation",
}



def run(cmd, *args):
    return subprocess.run([*cmd, "check", "rules", *args], capture_output=True, text=True,
                          timeout=60, cwd=CONF)


def status_lines(p):
    """Checking/SUCCESS lines (stdout) and FAILED lines (stderr), in order."""
    out = [line.strip() for line in p.stdout.splitlines()
           if line.startswith("Checking ") or line.startswith("  SUCCESS:")]
    err = [line.strip() for line in p.stderr.splitlines() if line.startswith("  FAILED:")]
    return out, err


def require_tools():
    if not os.path.isdir(CONF):
        if os.environ.get("CI"):
            pytest.fail(f"conformance data missing: {CONF}")
        pytest.skip(f"conformance data not found at {CONF}")
    if not PROMTOOL:
        if os.environ.get("CI"):
            pytest.fail("promtool not installed")
        pytest.skip("promtool not installed (apt-get install prometheus)")


def params():
    ps = []
    for f in inputs():
        name = os.path.basename(f)
        marks = []
        for flags in ([], ["--lint-fatal"], ["--lint=none"]):
            ps.append(pytest.param(f, flags, marks=marks,
                                   id=f"{name}{''.join(' ' + x for x in flags)}"))
    return ps


@pytest.mark.parametrize("path,flags", params())
def test_same_as_promtool(path, flags):
    require_tools()
    rel = os.path.relpath(path, CONF)
    ours = run([BIN], *flags, rel)
    theirs = run([PROMTOOL], *flags, rel)
    name = os.path.basename(path)
    detail = (f"sidewatch rc={ours.returncode}\n{ours.stdout}{ours.stderr}\n"
              f"promtool rc={theirs.returncode}\n{theirs.stdout}{theirs.stderr}")
    if name in THREE_X:
        # Prometheus 3 behaviour: the file is valid; promtool 2.42 refuses it.
        assert ours.returncode == 0, detail
        assert status_lines(ours)[1] == [], detail
        assert theirs.returncode == 1, detail
        return
    assert ours.returncode == theirs.returncode, detail
    assert status_lines(ours) == status_lines(theirs), detail


def test_all_files_at_once():
    """One invocation over every input: the same sequence of lines and exit code."""
    require_tools()
    files = [os.path.relpath(f, CONF) for f in inputs()
             if os.path.basename(f) not in set(THREE_X)]
    assert len(files) >= 15
    for flags in ([], ["--lint-fatal"]):
        ours = run([BIN], *flags, *files)
        theirs = run([PROMTOOL], *flags, *files)
        assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
        assert status_lines(ours) == status_lines(theirs)


def test_lint_fatal_exit_code():
    require_tools()
    rel = os.path.join("rules-unittest", "rules_duplicates.yml")
    assert run([BIN], rel).returncode == 0
    assert run([BIN], "--lint-fatal", rel).returncode == 3
    assert run([BIN], "--lint=none", "--lint-fatal", rel).returncode == 0


def test_ignore_unknown_fields():
    """promtool 3's --ignore-unknown-fields (2.42 does not have the flag)."""
    require_tools()
    rel = os.path.join("rules-unittest", "rules_extrafields.yml")
    p = run([BIN], rel)
    assert p.returncode == 1
    assert "field namespace not found in type rulefmt.RuleGroup" in p.stderr
    p = run([BIN], "--ignore-unknown-fields", rel)
    assert p.returncode == 0, p.stderr
    assert "SUCCESS:" in p.stdout


def test_missing_file_and_errors_have_positions(tmp_path):
    require_tools()
    p = run([BIN], str(tmp_path / "nope.yml"))
    q = run([PROMTOOL], str(tmp_path / "nope.yml"))
    assert p.returncode == q.returncode == 1
    assert "does not exist" in p.stderr and "does not exist" in q.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n")
    p = run([BIN], str(bad))
    assert p.returncode == 1
    assert f"{bad}:5:11: group \"g\", rule 1, \"r\": could not parse expression: " in p.stderr


# Small inputs beyond the conformance folders where promtool 2.42 and 3.x
# agree: decoding errors, dropped null items, names with empty values.
EXTRA = {
    "dupkey.yml": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    expr: down\n",
    "limit.yml": "groups:\n- name: g\n  limit: abc\n  rules:\n  - alert: A\n    expr: up\n",
    "baddur.yml": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
    "strrule.yml": "groups:\n- name: g\n  rules:\n  - up\n",
    "seqroot.yml": "- a\n",
    "nullgroups.yml": "groups:\n- {}\n- null\n",
    "nullrule.yml": "groups:\n- name: g\n  rules:\n  - ~\n  - record: r\n    expr: up\n",
    "emptyname.yml": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n"
                     "    labels:\n      __name__: \"\"\n",
    "recann.yml": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n"
                  "    annotations:\n      a: \"\"\n",
    "empty.yml": "",
    "nogroups.yml": "groups:\n",
    "numexpr.yml": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: 1\n",
    "dups.yml": "groups:\n- name: a\n  rules:\n  - record: r\n    expr: up\n    labels: {x: y}\n"
                "- name: b\n  rules:\n  - record: r\n    expr: up\n    labels: {x: y}\n"
                "  - record: r\n    expr: up\n  - alert: r\n    expr: up\n",
}


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_extra_inputs_same_as_promtool(tmp_path, name):
    require_tools()
    f = tmp_path / name
    f.write_text(EXTRA[name])
    for flags in ([], ["--lint-fatal"]):
        ours = run([BIN], *flags, str(f))
        theirs = run([PROMTOOL], *flags, str(f))
        detail = (f"sidewatch rc={ours.returncode}\n{ours.stdout}{ours.stderr}\n"
                  f"promtool rc={theirs.returncode}\n{theirs.stdout}{theirs.stderr}")
        assert ours.returncode == theirs.returncode, detail
        assert status_lines(ours) == status_lines(theirs), detail


def test_duplicates_with_group_labels(tmp_path):
    """Prometheus 3 group labels count in the duplicate-rules lint (promtool
    2.42 has no group labels): a group's labels, overridden by the rule's."""
    require_tools()
    f = tmp_path / "g.yml"
    f.write_text("groups:\n- name: a\n  labels: {x: y, z: w}\n  rules:\n  - record: r\n"
                 "    expr: up\n    labels: {z: v}\n"
                 "- name: b\n  rules:\n  - record: r\n    expr: up\n    labels: {x: y, z: v}\n"
                 "  - record: r\n    expr: up\n")
    p = run([BIN], "--lint-fatal", str(f))
    assert p.returncode == 3, p.stderr
    assert p.stderr == ("  FAILED:\nlint error 1 duplicate rule(s) found.\nMetric: r\nLabel(s):\n"
                        "\tx: y\n\tz: v\nMight cause inconsistency while recording expressions\n")


def test_standard_input():
    """promtool 3 reads standard input when no file is given."""
    p = subprocess.run([BIN, "check", "rules"], input="groups:\n- name: g\n  rules:\n"
                       "  - record: r\n    expr: up\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Checking standard input\n  SUCCESS: 1 rules found\n")
    p = subprocess.run([BIN, "check", "rules"], input="groups:\n- name: g\n  rules:\n"
                       "  - record: r\n    expr: up(\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "  FAILED:\nstandard input:5:11: group \"g\", rule 1, \"r\": could not parse" in p.stderr


def test_check_config_checks_its_rule_files(tmp_path):
    """`check config` checks the rule files the config names, as promtool does."""
    (tmp_path / "cfg.yml").write_text("rule_files: ['rules/*.yml']\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "good.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n")
    ok = subprocess.run([BIN, "check", "config", "cfg.yml"], capture_output=True, text=True,
                        cwd=tmp_path, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "SUCCESS: 1 rule files found" in ok.stdout
    assert "SUCCESS: 1 rules found" in ok.stdout
    (tmp_path / "rules" / "bad.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: sum(\n")
    bad = subprocess.run([BIN, "check", "config", "cfg.yml"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert bad.returncode == 1
    assert "SUCCESS: 2 rule files found" in bad.stdout
    assert "bad.yml:5:15:" in bad.stderr and "unclosed left parenthesis" in bad.stderr
