//! The noisy-neighbour run (`benches/load/noisy_neighbour.sh`): account A alone, then
//! beside account B's attacks, then alone again, on a stack the script started. The
//! run after is the control: a broker whose cost grows with what its topics hold
//! (tansu's memory storage lists a partition's every batch at each fetch,
//! docs/deploy.md) makes A slower later whatever B does, and B's attack leaves the
//! topics fuller. Prints one JSON line per run (`integration_tests::neighbours::Report`).
//!
//!   noisy_neighbour INGEST_URL API_URL TOKEN_A TOKEN_B RATE SECONDS

use std::time::Duration;

use integration_tests::neighbours::{run, Plan, Stack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, ingest, api, token_a, token_b, rate, seconds] = args.as_slice() else {
        anyhow::bail!("usage: noisy_neighbour INGEST_URL API_URL TOKEN_A TOKEN_B RATE SECONDS");
    };
    let stack = Stack {
        ingest: ingest.clone(),
        api: api.clone(),
        token_a: token_a.clone(),
        token_b: token_b.clone(),
        a_client: "arroyo".into(),
        b_client: "noisy-hook".into(),
        b_signed_client: "noisy-signed".into(),
        b_account: "noisy".into(),
    };
    let rate: u32 = rate.parse()?;
    let duration = Duration::from_secs(seconds.parse()?);
    let tag = chrono::Utc::now().timestamp();
    for (name, attack) in [("alone", false), ("beside_b", true), ("alone_after", false)] {
        let plan = Plan {
            duration,
            a_rate: rate,
            attack,
        };
        let report = run(&stack, plan, &format!("nn{tag}_{name}")).await;
        println!("{name} {}", serde_json::to_string(&report)?);
        // The pipeline drains B's last records before the next run starts.
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    Ok(())
}
