use sluice_sim::{run, Scenario};

#[test]
fn smoke() {
    let scenario = Scenario::named("pipeline").unwrap();
    let report = run(&scenario, 1).unwrap();
    println!("{}", report.to_yaml());
}
