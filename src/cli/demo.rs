//! `inlet demo [DIR]`: the service on the built-in change generator. Two tables — orders,
//! merge-on-read with compaction in the background, and customers, copy-on-write partitioned by
//! region (values such as `Köln`, `東京` and `x=y`) — fed with inserts, updates and deletes, the
//! admin page to watch them, and the commands to read them. Ctrl-C stops it cleanly; running it
//! again on the same directory goes on where it stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use inlet_config::Config;
use tokio::sync::oneshot;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory of the demo lake (created; an earlier demo's is continued).
    #[arg(default_value = "inlet-demo")]
    dir: PathBuf,
    /// Address of the admin page (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = inlet_config::DEFAULT_ADMIN_LISTEN)]
    admin: String,
    /// Stop after this long (e.g. 30s); without it the demo runs until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = inlet_config::parse_duration)]
    duration: Option<Duration>,
    /// Generated changes per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
}

/// The demo's service configuration.
fn config(dir: &str, admin: &str, rate: u64) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[admin]
listen = {admin:?}

[services]
compaction = "delta-commits:3"
clean = "keep-latest-commits:4"
archive_min_commits = 10
archive_max_commits = 15

[source]
kind = "datagen"
tables = ["shop.orders", "shop.customers"]
rate = {rate}
key_space = 5000
seed = 7

[sink]
base_uri = {dir:?}
table_type = "mor"
buckets = 2

[batch]
max_delay = "1s"

[tables."shop.customers"]
table_type = "cow"
partition_by = ["region"]
"#
    );
    Ok(Config::parse(&text, "the demo configuration")?)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let base = std::path::absolute(&args.dir)?.display().to_string();
    let config = config(&base, &args.admin, args.rate)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    super::run::spawn_signal_handler(shutdown.clone(), Duration::from_secs(30))?;
    if let Some(duration) = args.duration {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            shutdown.store(true, Ordering::SeqCst);
        });
    }
    let (serving, address) = oneshot::channel();
    let service = crate::service::run(&config, shutdown, Some(serving));
    let orders = format!("{base}/shop/orders");
    let customers = format!("{base}/shop/customers");
    let guide = async {
        let Ok(address) = address.await else {
            return;
        };
        println!(
            "inlet demo: {rate} generated changes/s into two Hudi tables under {base}\n\
             \x20 shop.orders     merge-on-read, compacted in the background every 3 delta commits\n\
             \x20 shop.customers  copy-on-write, partitioned by region\n\n\
             Admin page:  http://{address}/\n\
             Metrics:     http://{address}/metrics\n\n\
             Try in another terminal:\n\
             \x20 inlet read {orders} --format table --columns id,name,region,amount\n\
             \x20 inlet timeline {orders}\n\
             \x20 inlet read {customers} --as-of <instant from the timeline>\n\
             \x20 python -c 'import hudi; t = hudi.HudiTableBuilder.from_base_uri(\"{orders}\").build(); print(sum(b.num_rows for b in t.read()), \"rows\")'\n\n\
             {stop}",
            rate = args.rate,
            stop = match args.duration {
                Some(d) => format!("Stops after {d:?} (or Ctrl-C)."),
                None => "Ctrl-C stops it (buffered changes are committed first).".to_string(),
            }
        );
    };
    let (outcomes, ()) = tokio::join!(service, guide);
    let outcomes = outcomes?;
    super::run::report(&outcomes)?;
    println!(
        "\nStopped. The tables stay in {base}; `inlet demo {}` goes on from here.",
        args.dir.display()
    );
    Ok(())
}
