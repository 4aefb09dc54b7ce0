//! README.md tells the truth: its generated blocks are what the commands print today
//! (refresh with hack/update-readme.sh).

mod support;

use std::process::Command;

fn block(readme: &str, name: &str) -> String {
    let start = format!("<!-- {name} -->\n");
    let end = format!("\n<!-- /{name} -->");
    let from = readme
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {name} block"))
        + start.len();
    let to = from + readme[from..].find(&end).expect("block end");
    readme[from..to].to_string()
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_blocks_match_the_commands() {
    let readme = std::fs::read_to_string(support::repo_path("README.md")).unwrap();
    let ex = "manifests/examples";
    let fix = "run hack/update-readme.sh";
    assert_eq!(
        block(&readme, "check-output"),
        format!("```\n{}```", run(&["check", ex])),
        "{fix}"
    );
    let missing_vg = run(&[
        "check",
        &format!("{ex}/10-egress-gateway-service.yaml"),
        &format!("{ex}/20-service-accounts.yaml"),
        &format!("{ex}/40-externalservice.yaml"),
        &format!("{ex}/50-accesspolicy.yaml"),
    ]);
    assert!(missing_vg.contains("[E22]"));
    assert_eq!(
        block(&readme, "check-missing-vg-output"),
        format!("```\n{missing_vg}```"),
        "{fix}"
    );
    assert_eq!(
        block(&readme, "render-output"),
        format!("```yaml\n{}```", run(&["render", ex])),
        "{fix}"
    );
    assert_eq!(
        block(&readme, "access-output"),
        format!("```\n{}```", run(&["access", "--host", "httpbin.org", ex])),
        "{fix}"
    );
    assert_eq!(
        block(&readme, "rules-table"),
        run(&["rules", "--markdown"]).trim_end(),
        "{fix}"
    );
}
