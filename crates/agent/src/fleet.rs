//! The fleet simulator: registers N simulated machines (or adopts the ones an earlier run left
//! under its label), mints one agent token per machine, and runs one [`Agent`] per machine as
//! tokio tasks in this process, all sharing one connection pool. Each agent keeps its spool
//! ([`crate::spool`]) in memory, or in its own subdirectory (named after its machine) of
//! [`FleetConfig::state_dir`].
//!
//! At start it reads the release catalog of its machines' OS versions and the service clock, so
//! each new machine starts from the catalog ([`SimulatedMachine::from_catalog`]); an OS whose
//! catalog is empty or cannot be read gets machines with random updates, with a warning.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use futures::{StreamExt, TryStreamExt};
use hotpatch_domain::{
    supported_skus, Image, MachineSpec, OsVersion, PatchOrchestration, Platform, Timezone,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::agent::{Agent, AgentConfig, AgentError, Stats};
use crate::client::{http_client, AgentClient, ClientError, FleetClient, MachineRef, RecordedState};
use crate::sim::{Clock, SimCatalog, SimConfig, SimulatedMachine};
use crate::spool::{Spool, SpoolError};

/// The label key every simulated machine carries; its value is the prefix.
pub const LABEL: &str = "sim";
/// Machines per import request.
pub const IMPORT_CHUNK: usize = 1_000;
/// Regions that offer Windows Server 2025 Azure Edition when the server does not say.
pub const DEFAULT_WS2025_REGIONS: [&str; 3] = ["uksouth", "eastasia", "westcentralus"];
/// Time zones the simulated machines cycle through.
pub const TIMEZONES: [Tz; 6] = [
    chrono_tz::Europe::London,
    chrono_tz::Asia::Hong_Kong,
    chrono_tz::America::Denver,
    chrono_tz::America::New_York,
    chrono_tz::Europe::Berlin,
    chrono_tz::Australia::Sydney,
];

/// What the simulator runs.
#[derive(Clone)]
pub struct FleetConfig {
    /// Base URL of the server.
    pub server: String,
    /// Operator token (registration and agent tokens).
    pub operator_token: String,
    /// How many machines.
    pub machines: usize,
    /// Name prefix and value of the `sim` label.
    pub prefix: String,
    /// Regions, cycled.
    pub regions: Vec<String>,
    /// Seed of every machine's behaviour (machine `i` gets one derived from it).
    pub seed: u64,
    /// The simulated machines' behaviour (`os` and `seed` are set per machine).
    pub sim: SimConfig,
    /// The agents' behaviour (`first_claim_delay` is set per machine).
    pub agent: AgentConfig,
    /// First claims are spread over this long.
    pub stagger: Duration,
    /// Agent tokens minted at once.
    pub token_concurrency: usize,
    /// Where the agents keep their state, one subdirectory per machine; `None` keeps it in
    /// memory (it then lasts as long as the simulator, like the simulated machines).
    pub state_dir: Option<PathBuf>,
}

impl FleetConfig {
    /// A configuration with the defaults of `hotpatch-agent simulate`.
    pub fn new(server: &str, operator_token: &str, machines: usize) -> FleetConfig {
        FleetConfig {
            server: server.to_owned(),
            operator_token: operator_token.to_owned(),
            machines,
            prefix: "sim".to_owned(),
            regions: DEFAULT_WS2025_REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            seed: 0,
            sim: SimConfig::default(),
            agent: AgentConfig::default(),
            stagger: Duration::from_secs(2),
            token_concurrency: 32,
            state_dir: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// A registration call failed.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// An agent's state directory cannot be used.
    #[error(transparent)]
    State(#[from] SpoolError),
}

fn client_error(what: impl Into<String>) -> impl FnOnce(ClientError) -> FleetError {
    let what = what.into();
    move |source| FleetError::Client { what, source }
}

/// Raises the soft limit of open files to the hard limit (one socket per agent); returns the
/// soft limit in force afterwards (`None` = unlimited).
#[cfg(unix)]
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum }) {
        Ok(()) => limit.maximum,
        Err(e) => {
            warn!(error = %e, "could not raise the open files limit");
            limit.current
        }
    }
}

/// Windows has no per-process limit of open sockets to raise.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// Machines per simulated availability set.
pub const SET_SIZE: usize = 10;
/// Update domains of a simulated availability set.
pub const UPDATE_DOMAINS: usize = 5;

/// The spec of simulated machine `index`: an eligible Azure VM with hotpatch on. Regions cycle
/// fastest, then availability zones 1–3, then the OS (Windows Server 2025 only where `ws2025`
/// says it is offered), so every region gets every zone and both OSes; every fourth machine of
/// a region is in an availability set instead of a zone.
pub fn machine_spec(
    prefix: &str,
    index: usize,
    regions: &[String],
    ws2025: &BTreeSet<String>,
) -> MachineSpec {
    let region = regions.get(index % regions.len().max(1)).cloned().unwrap_or_else(|| "uksouth".to_owned());
    let per_region = index / regions.len().max(1);
    let os = if (per_region / 3) % 2 == 1 && ws2025.contains(&region) {
        OsVersion::WindowsServer2025
    } else {
        OsVersion::WindowsServer2022
    };
    // Every fourth machine of a region is in an availability set (sets and zones exclude each
    // other in Azure): sets of SET_SIZE machines over UPDATE_DOMAINS update domains.
    let in_set = per_region % 4 == 3;
    let skus = supported_skus(os);
    let sku = skus.get((index / 7) % skus.len().max(1)).copied().unwrap_or_default();
    MachineSpec {
        name: machine_name(prefix, index),
        platform: Platform::AzureVm,
        os,
        image: Some(Image {
            publisher: "MicrosoftWindowsServer".to_owned(),
            offer: "WindowsServer".to_owned(),
            sku: sku.to_owned(),
            kind: Default::default(),
        }),
        edition: None,
        os_build: None,
        vbs_enabled: None,
        availability_zone: (!in_set).then(|| ((per_region % 3) + 1).to_string()),
        availability_set: in_set.then(|| format!("{prefix}-{region}-as{}", per_region / (4 * SET_SIZE))),
        update_domain: in_set.then_some(((per_region / 4) % UPDATE_DOMAINS) as i32),
        fault_domain: in_set.then_some(((per_region / 4) % 3) as i32),
        region,
        scale_set: None,
        timezone: Timezone(TIMEZONES[index % TIMEZONES.len()]),
        hotpatch_enabled: true,
        patch_orchestration: PatchOrchestration::AutomaticByPlatform,
        labels: [(LABEL.to_owned(), prefix.to_owned())].into_iter().collect(),
    }
}

/// `{prefix}-{index:05}`.
pub fn machine_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// The seed of machine `index`'s simulation.
pub fn machine_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Whether a machine was registered by an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adopted {
    Yes,
    No,
}

/// Calls `f` again on retryable errors, a few times.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut failures = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && failures < 4 => {
                failures += 1;
                tokio::time::sleep(crate::agent::backoff(failures, 0.5)).await;
            }
            other => return other,
        }
    }
}

/// A running simulated fleet.
pub struct Fleet {
    tasks: JoinSet<Result<(), AgentError>>,
    stats: Arc<Stats>,
}

impl Fleet {
    /// Registers (or adopts) the machines, mints their tokens and starts their agents, which run
    /// until `cancel` fires.
    pub async fn start(config: FleetConfig, cancel: CancellationToken) -> Result<Fleet, FleetError> {
        if config.machines == 0 {
            return Err(FleetError::Config("the simulator needs at least one machine".to_owned()));
        }
        if config.regions.is_empty() {
            return Err(FleetError::Config("the simulator needs at least one region".to_owned()));
        }
        let files = raise_open_files_limit();
        if files.is_some_and(|n| n < config.machines as u64 + 64) {
            warn!(open_files = files, machines = config.machines, "the open files limit may be too low");
        }
        let http = http_client().map_err(client_error("building the HTTP client"))?;
        let api = FleetClient::new(http.clone(), &config.server, &config.operator_token);
        let machines = register(&api, &config).await?;
        // An adopted machine takes up what the server recorded of it, so a restarted simulator
        // does not forget the updates its machines installed.
        // Owned items: a stream over borrowed ones makes this future `Send` only for one
        // lifetime, and `hotpatchd dev` spawns it.
        let owned: Vec<(MachineRef, Adopted)> =
            machines.iter().map(|(_, m, adopted)| (m.clone(), *adopted)).collect();
        let api = &api;
        let setup: Vec<(String, Option<RecordedState>)> = futures::stream::iter(owned)
            .map(|(m, adopted)| {
                let name = format!("sim agent {}", m.name);
                async move {
                    let token = retrying(|| api.agent_token(m.id, &name))
                        .await
                        .map_err(client_error(format!("minting the agent token of {}", m.name)))?;
                    let recorded = match adopted {
                        Adopted::Yes => retrying(|| api.recorded_state(m.id))
                            .await
                            .map_err(client_error(format!("reading the recorded state of {}", m.name)))?,
                        Adopted::No => None,
                    };
                    Ok::<_, FleetError>((token, recorded))
                }
            })
            .buffered(config.token_concurrency.max(1))
            .try_collect()
            .await?;
        let oses: BTreeSet<OsVersion> =
            machines.iter().map(|(_, m, _)| m.os.unwrap_or(OsVersion::WindowsServer2022)).collect();
        let catalog = Arc::new(read_catalog(api, &oses).await);
        let stats = Arc::new(Stats::default());
        let clock: Clock = config.sim.clock.clone();
        let mut tasks = JoinSet::new();
        let n = machines.len() as u32;
        for (i, ((index, machine, _), (token, recorded))) in machines.into_iter().zip(setup).enumerate() {
            let os = machine.os.unwrap_or(OsVersion::WindowsServer2022);
            let sim = SimConfig {
                os,
                seed: machine_seed(config.seed, index),
                clock: clock.clone(),
                ..config.sim.clone()
            };
            let agent_config = AgentConfig {
                first_claim_delay: config.stagger * i as u32 / n.max(1),
                ..config.agent.clone()
            };
            let client = AgentClient::new(http.clone(), &config.server, &token);
            let mut simulated = SimulatedMachine::from_catalog(sim, catalog.clone());
            if let Some(r) = recorded {
                simulated.restore(r.os_build, r.installed);
            }
            let spool = match &config.state_dir {
                Some(dir) => Spool::open(&dir.join(&machine.name))?,
                None => Spool::in_memory(),
            };
            let agent = Agent::new(client, simulated, agent_config, stats.clone(), spool);
            let span = info_span!("agent", machine = %machine.name, machine_id = %machine.id);
            tasks.spawn(agent.run(cancel.clone()).instrument(span));
        }
        info!(machines = n, "simulated agents started");
        Ok(Fleet { tasks, stats })
    }

    /// The counters of every agent.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// How many agents run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no agent runs.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every agent to stop; returns how many stopped with an error.
    pub async fn wait(mut self) -> usize {
        let mut errors = 0;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    errors += 1;
                    warn!(error = %e, "agent stopped");
                }
                Err(e) => {
                    errors += 1;
                    warn!(error = %e, "agent task failed");
                }
            }
        }
        errors
    }
}

/// The catalog of `oses` as the server has it at its own now; what cannot be read is left out,
/// with a warning (machines of such an OS draw random updates).
async fn read_catalog(api: &FleetClient, oses: &BTreeSet<OsVersion>) -> SimCatalog {
    let now = match retrying(|| api.server_now()).await {
        Ok(now) => now,
        Err(e) => {
            warn!(error = %e, "could not read the service clock; taking this machine's");
            Utc::now()
        }
    };
    let mut releases = Vec::new();
    for &os in oses {
        match retrying(|| api.releases(os)).await {
            Ok(r) => releases.extend(r),
            Err(e) => warn!(error = %e, ?os, "could not read the release catalog"),
        }
    }
    let catalog = SimCatalog::new(releases, now);
    for &os in oses {
        if catalog.covers(os) {
            info!(?os, releases = catalog.releases(os).len(), %now, "simulated machines start from the catalog");
        } else {
            warn!(?os, %now, "no baseline of this OS in the catalog: its simulated machines draw random updates");
        }
    }
    catalog
}

/// Adopts the machines already labelled `sim=<prefix>` and imports the missing ones; returns
/// every machine with its index (its OS filled in) and whether it was adopted, in index order.
async fn register(
    api: &FleetClient,
    config: &FleetConfig,
) -> Result<Vec<(usize, MachineRef, Adopted)>, FleetError> {
    let existing: HashMap<String, MachineRef> = retrying(|| api.machines_with_label(LABEL, &config.prefix))
        .await
        .map_err(client_error("listing existing simulated machines"))?
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    let ws2025: BTreeSet<String> = match api.regions().await {
        Ok(regions) => {
            regions.into_iter().filter(|r| r.windows_server_2025_azure_edition).map(|r| r.name).collect()
        }
        Err(e) => {
            warn!(error = %e, "could not read region capabilities; assuming the seeded ones");
            DEFAULT_WS2025_REGIONS.iter().map(|r| (*r).to_owned()).collect()
        }
    };
    let mut machines = Vec::with_capacity(config.machines);
    let mut missing = Vec::new();
    for index in 0..config.machines {
        let spec = machine_spec(&config.prefix, index, &config.regions, &ws2025);
        match existing.get(&spec.name) {
            Some(m) => {
                machines.push((index, MachineRef { os: m.os.or(Some(spec.os)), ..m.clone() }, Adopted::Yes))
            }
            None => missing.push((index, spec)),
        }
    }
    info!(adopted = machines.len(), to_import = missing.len(), "registering simulated machines");
    for chunk in missing.chunks(IMPORT_CHUNK) {
        let specs: Vec<MachineSpec> = chunk.iter().map(|(_, s)| s.clone()).collect();
        let imported = api.import(&specs).await.map_err(|e| match e {
            ClientError::Problem { status: 409, .. } => FleetError::Config(format!(
                "some names {}-NNNNN exist without the label {LABEL}={}; choose another --prefix ({e})",
                config.prefix, config.prefix
            )),
            other => client_error("importing simulated machines")(other),
        })?;
        if imported.len() != chunk.len() {
            return Err(FleetError::Config(format!(
                "the import answered {} machines for {} sent",
                imported.len(),
                chunk.len()
            )));
        }
        for ((index, spec), m) in chunk.iter().zip(imported) {
            machines.push((*index, MachineRef { os: Some(spec.os), ..m }, Adopted::No));
        }
    }
    machines.sort_by_key(|(index, _, _)| *index);
    Ok(machines)
}
