"""JUnit XML reports of ``mbnn regress`` (the format CI servers read: Jenkins, GitLab, GitHub
actions' test reporters), and merging the reports of sharded runs into one.

One ``<testsuite>`` per block; one ``<testcase>`` per block/set/simulator/seed, named
``set[simulator, seed S]`` with classname ``mbnn.<block>``. A failed test carries a
``<failure>`` whose text holds the failing cocotb tests, the seed and the replay command;
every test carries properties (seed, simulator, build directory, replay command, waveforms).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from golden.fileio import atomic_write_bytes

__all__ = ["write_junit", "merge_junit", "JUnitError"]


class JUnitError(ValueError):
    """A report to merge is not a JUnit file of this tool, or two reports overlap."""


def _case_name(rec) -> str:
    return f"{rec.test.set}[{rec.test.simulator}, seed {rec.seed}]"


def _suite_totals(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")


def _document(suites: list[ET.Element]) -> bytes:
    root = ET.Element("testsuites", name="mbnn regress")
    for s in suites:
        _suite_totals(s)
        root.append(s)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in suites)))
    root.set("time", f"{sum(float(s.get('time')) for s in suites):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(records, path: Path, replay) -> None:
    """Write ``records`` (:class:`sim.regress.TestRecord`) to ``path`` (atomically);
    ``replay(record)`` gives a failed test's replay command."""
    suites: dict[str, ET.Element] = {}
    for rec in records:
        suite = suites.get(rec.test.block)
        if suite is None:
            suite = suites[rec.test.block] = ET.Element("testsuite", name=f"mbnn.{rec.test.block}")
        case = ET.SubElement(suite, "testcase", classname=f"mbnn.{rec.test.block}",
                             name=_case_name(rec), time=f"{rec.wall_s:.3f}")
        props = ET.SubElement(case, "properties")
        command = replay(rec)
        for k, v in (("id", rec.test.id), ("seed", rec.seed), ("simulator", rec.test.simulator),
                     ("cocotb_passed", rec.passed), ("cocotb_failed", rec.failed),
                     ("build_dir", rec.build_dir), ("replay", command),
                     *(("waves", w) for w in rec.waves),
                     *((f"coverage: {b}", v["hits"])
                       for b, v in ((rec.coverage or {}).get("bins") or {}).items())):
            ET.SubElement(props, "property", name=k, value=str(v))
        if not rec.ok:
            first = rec.messages[0] if rec.messages else "no cocotb test ran"
            failure = ET.SubElement(case, "failure", message=first[:300], type="regression")
            failure.text = "\n".join(rec.messages + [f"seed: {rec.seed}", f"replay: {command}"]
                                     + [f"waves: {w}" for w in rec.waves])
    atomic_write_bytes(path, _document(list(suites.values())))


def merge_junit(paths: list[Path], out: Path) -> tuple[int, int]:
    """Merge the reports ``paths`` (of shards of one run) into ``out``; returns (tests,
    failures).

    Raises
    ------
    JUnitError
        A file is missing or not a JUnit report, or a test case appears in two reports (the
        shards overlap: each test must run exactly once), naming the files.
    """
    suites: dict[str, ET.Element] = {}
    seen: dict[tuple[str, str], Path] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise JUnitError(f"--merge {path}: no such file")
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise JUnitError(f"--merge {path}: not an XML file ({exc})") from None
        found = [root] if root.tag == "testsuite" else root.findall("testsuite") \
            if root.tag == "testsuites" else None
        if found is None:
            raise JUnitError(f"--merge {path}: not a JUnit report (root <{root.tag}>, expected "
                             f"<testsuites> or <testsuite>)")
        for suite in found:
            into = suites.get(suite.get("name", ""))
            if into is None:
                into = suites[suite.get("name", "")] = ET.Element("testsuite",
                                                                 name=suite.get("name", ""))
            for case in suite.findall("testcase"):
                key = (case.get("classname", ""), case.get("name", ""))
                if key in seen:
                    raise JUnitError(f"--merge: test {key[0]}.{key[1]} is in both {seen[key]} "
                                     f"and {path} (shards must not overlap)")
                seen[key] = path
                into.append(case)
    ordered = [suites[k] for k in sorted(suites)]
    atomic_write_bytes(out, _document(ordered))
    return len(seen), sum(int(s.get("failures")) for s in ordered)
