//! Tests of `warden test`: passing, failing, budget-exhausting and crashing tests, manifests,
//! guest and host directories, JUnit output (parsed), parallel runs and seed sweeps.

use std::path::{Path, PathBuf};
use std::process::Command;

use warden::testrun::{self, TestConfig};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-wtest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn warden(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MANIFEST: &str = r#"
[[test]]
name = "passes"
run = "testprog pass"
stdout = "ok\n"

[[test]]
name = "fails"
run = "testprog fail"

[[test]]
name = "spins"
run = "testprog spin"
budget = 200000

[[test]]
name = "crashes"
run = "testprog segv"

[[test]]
name = "wrong <stdout> & \"quotes\""
run = ["testprog", "echo", "a\u0001b"]
stdout = "something else\n"

[[test]]
name = "expected crash"
run = "testprog segv"
status = 139
"#;

fn write_manifest(dir: &Path) -> PathBuf {
    let m = dir.join("suite.toml");
    std::fs::write(&m, MANIFEST).unwrap();
    m
}

#[test]
fn outcomes_lines_and_summary() {
    let dir = temp_dir("outcomes");
    let m = write_manifest(&dir);
    let (status, out, err) = warden(&["test", m.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].starts_with("ok passes ("), "{out}");
    assert!(lines[0].ends_with(" instructions)"), "{out}");
    assert!(lines[1].starts_with("FAIL fails: exit status 1, expected exit status 0"), "{out}");
    assert!(lines[1].contains("failing on purpose"), "stderr's last line is quoted: {out}");
    assert_eq!(lines[2], "FAIL spins: instruction budget of 200000 exhausted", "{out}");
    assert!(lines[3].starts_with("FAIL crashes: killed by signal 11 (SIGSEGV), expected exit status 0"), "{out}");
    assert!(lines[4].contains("stdout differs"), "{out}");
    assert!(lines[5].starts_with("ok expected crash ("), "{out}");
    assert_eq!(lines[6], "2 passed, 4 failed, 0 skipped");
}

#[test]
fn all_passing_exits_zero_and_default_is_bin_tests() {
    let (status, out, _) = warden(&["test"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("ok /bin/tests/files ("), "{out}");
    assert!(out.contains("ok /bin/tests/pipes ("), "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 0 failed, 0 skipped"));
    // A guest program path and the example manifest.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tests.toml");
    let (status, out, _) = warden(&["test", "/bin/true", example]);
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with("ok /bin/true ("), "{out}");
}

#[test]
fn junit_report_parses() {
    let dir = temp_dir("junit");
    let m = write_manifest(&dir);
    let xml_path = dir.join("report.xml");
    let (status, out, _) = warden(&["test", "--junit", xml_path.to_str().unwrap(), m.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{xml}"));
    let suites = doc.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    assert_eq!(suites.attribute("tests"), Some("6"));
    assert_eq!(suites.attribute("failures"), Some("4"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 6);
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names[4], "wrong <stdout> & \"quotes\"");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["fails", "spins", "crashes", "wrong <stdout> & \"quotes\""]);
    let spins = cases[2].children().find(|n| n.has_tag_name("failure")).unwrap();
    assert!(spins.attribute("message").unwrap().contains("budget"));
    let out0 = cases[0].children().find(|n| n.has_tag_name("system-out")).unwrap();
    assert_eq!(out0.text(), Some("ok\n"));
    let err1 = cases[1].children().find(|n| n.has_tag_name("system-err")).unwrap();
    assert!(err1.text().unwrap().contains("failing on purpose"));
    // The control character in the guest's output did not break the document.
    let out4 = cases[4].children().find(|n| n.has_tag_name("system-out")).unwrap();
    assert!(out4.text().unwrap().starts_with('a'));
}

#[test]
fn escaping_covers_markup_and_control_characters() {
    assert_eq!(testrun::xml_escape("a<b>&\"'\u{1}\n"), "a&lt;b&gt;&amp;&quot;&apos;\u{fffd}\n");
}

#[test]
fn parallel_runs_match_serial_runs_in_order() {
    let config = |jobs| TestConfig { jobs, ..TestConfig::default() };
    let specs: Vec<_> = (0..8)
        .flat_map(|i| {
            let mut t = testrun::discover(&["/bin/tests".into()], &config(1)).unwrap();
            for s in &mut t {
                s.name = format!("{} {i}", s.name);
            }
            t
        })
        .collect();
    let mut serial_out = Vec::new();
    let (s1, serial) = testrun::run_tests(&specs, &config(1), &mut serial_out).unwrap();
    let mut parallel_out = Vec::new();
    let started = std::time::Instant::now();
    let (s4, parallel) = testrun::run_tests(&specs, &config(4), &mut parallel_out).unwrap();
    let _ = started.elapsed();
    assert_eq!(s1, s4);
    assert_eq!(s4.passed, 16);
    assert_eq!(serial_out, parallel_out, "same lines, same order");
    for (a, b) in serial.iter().zip(&parallel) {
        assert_eq!((a.instructions, &a.stdout), (b.instructions, &b.stdout), "{}", a.name);
    }
}

#[test]
fn host_programs_run_from_files_and_directories() {
    let dir = temp_dir("host");
    let bins = Path::new(env!("WARDEN_GUEST_BIN_DIR"));
    std::fs::copy(bins.join("true"), dir.join("a_true")).unwrap();
    std::fs::copy(bins.join("false"), dir.join("b_false")).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a program").unwrap();
    let (status, out, _) = warden(&["test", dir.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(&format!("ok {}/a_true (", dir.display())), "{out}");
    assert!(lines[1].starts_with(&format!("FAIL {}/b_false: exit status 1", dir.display())), "{out}");
    let one = dir.join("a_true");
    let (status, out, _) = warden(&["test", one.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
}

#[test]
fn bad_inputs_give_one_line_and_125() {
    let dir = temp_dir("bad");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[test]]\nrun = 5\n").unwrap();
    for args in [
        vec!["test", bad.to_str().unwrap()],
        vec!["test", "/no/such/thing"],
        vec!["test", "--seeds", "5..2"],
        vec!["test", "--image", "/nonexistent.tar"],
    ] {
        let (status, out, err) = warden(&args);
        assert_eq!(status, 125, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn seeds_sweep_names_each_run() {
    let (status, out, _) = warden(&["test", "--seeds", "0..3", "/bin/tests/files"]);
    assert_eq!(status, 0, "{out}");
    for s in 0..3 {
        assert!(out.contains(&format!("ok /bin/tests/files [seed {s}] (")), "{out}");
    }
    assert_eq!(out.lines().last(), Some("3 passed, 0 failed, 0 skipped"));
    assert_eq!(testrun::parse_seeds("2..=4").unwrap(), vec![2, 3, 4]);
    assert_eq!(testrun::parse_seeds("7").unwrap(), vec![7]);
    assert!(testrun::parse_seeds("x").is_err());
}

#[test]
fn manifest_command_lines_split_like_a_shell() {
    let w = testrun::split_words(r#"sh -c 'echo "a  b"; exit 4' x\ y "q\"" ''"#).unwrap();
    assert_eq!(w, ["sh", "-c", "echo \"a  b\"; exit 4", "x y", "q\"", ""]);
    assert!(testrun::split_words("'open").is_err());
}

#[test]
fn seeds_perturb_the_schedule_deterministically() {
    let dir = temp_dir("chaos");
    let m = dir.join("race.toml");
    std::fs::write(&m, "[[test]]\nname = \"race\"\nrun = \"testprog race 40\"\n").unwrap();
    let config = TestConfig { seeds: (0..16).collect(), jobs: 2, ..TestConfig::default() };
    let tests = testrun::load_manifest(&m, &config).unwrap();
    let (summary, first) = testrun::run_tests(&tests, &config, &mut Vec::new()).unwrap();
    // Seed 0 is plain round robin, where the unlocked counter happens to survive; some
    // other seed preempts a worker between its read and its write.
    assert!(first[0].passed(), "{:?}", first[0].verdict);
    assert!(summary.failed > 0, "no seed in 1..16 exposed the race");
    let counts: std::collections::BTreeSet<u64> = first.iter().map(|r| r.instructions).collect();
    assert!(counts.len() > 1, "seeds should give different interleavings: {counts:?}");
    // The same seed gives the same run.
    let (_, again) = testrun::run_tests(&tests, &config, &mut Vec::new()).unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!((a.instructions, &a.stdout, &a.verdict), (b.instructions, &b.stdout, &b.verdict));
    }
}

#[test]
fn shards_are_a_stable_balanced_partition() {
    let names: Vec<String> = (0..1000).map(|i| format!("suite tests::case_{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let shards = testrun::assign_shards(&refs, 4, None);
    assert_eq!(shards, testrun::assign_shards(&refs, 4, None), "the same every time");
    let mut counts = [0usize; 4];
    for &s in &shards {
        counts[s] += 1;
    }
    assert!(counts.iter().all(|&c| (200..=300).contains(&c)), "hash shards of 1000 names: {counts:?}");
    // A test keeps its shard when another test is added.
    let more = [&refs[..], &["suite tests::new_one"]].concat();
    assert_eq!(testrun::assign_shards(&more, 4, None)[..1000], shards[..]);

    // By weights (instructions from an earlier report): longest first, to the lightest shard.
    let weights: std::collections::BTreeMap<String, u64> =
        [("a", 90), ("b", 60), ("c", 50), ("d", 40), ("e", 30), ("f", 10)].map(|(n, w)| (n.to_string(), w)).into();
    let names = ["a", "b", "c", "d", "e", "f", "unknown"];
    let shards = testrun::assign_shards(&names, 2, Some(&weights));
    let mut load = [0u64; 2];
    for (n, s) in names.iter().zip(&shards) {
        load[*s] += weights.get(*n).copied().unwrap_or(50); // the median weight
    }
    assert!(load[0].abs_diff(load[1]) <= 10, "{load:?} {shards:?}");
    assert_eq!(testrun::parse_shard("2/4"), Ok((2, 4)));
    assert!(testrun::parse_shard("0/4").is_err() && testrun::parse_shard("5/4").is_err());
}
