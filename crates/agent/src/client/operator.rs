//! The operator calls the simulator makes: register machines, read what the server recorded of
//! them, list regions, read the release catalog and the service clock, mint agent tokens.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::InstalledUpdate;
use hotpatch_domain::{Kb, MachineSpec, Month, OsBuild, OsVersion, Release, ReleaseKind, ReleaseSpec};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{json, send, ClientError, Endpoint, REQUEST_TIMEOUT};

/// A registered machine as the simulator needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MachineRef {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its OS, when the answer says it (machine lists do; import answers do not).
    #[serde(default)]
    pub os: Option<OsVersion>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A region and whether it offers Windows Server 2025 Azure Edition (`GET /v1/regions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegionRef {
    /// Region name.
    pub name: String,
    /// Windows Server 2025 Azure Edition is available there.
    #[serde(default)]
    pub windows_server_2025_azure_edition: bool,
}

#[derive(Serialize)]
struct AgentTokenRequest<'a> {
    name: &'a str,
}

#[derive(Deserialize)]
struct CreatedToken {
    token: String,
}

/// A machine as its last assessment left it on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedState {
    /// OS build.
    pub os_build: OsBuild,
    /// Installed updates, as reported.
    pub installed: Vec<InstalledUpdate>,
}

#[derive(Deserialize)]
struct RecordedUpdates {
    items: Vec<InstalledUpdate>,
    assessed_at: Option<DateTime<Utc>>,
    os_build: Option<OsBuild>,
}

/// A release as `GET /v1/releases` lists it (the fields the simulator reads).
#[derive(Deserialize)]
struct ReleaseItem {
    id: Uuid,
    os: OsVersion,
    kind: ReleaseKind,
    planned: bool,
    month: Month,
    kb: Kb,
    build: OsBuild,
    released_at: DateTime<Utc>,
    superseded_by: Option<Uuid>,
}

impl From<ReleaseItem> for Release {
    fn from(r: ReleaseItem) -> Release {
        let ReleaseItem { id, os, kind, planned, month, kb, build, released_at, superseded_by } = r;
        Release { id, spec: ReleaseSpec { os, kind, planned, month, kb, build, released_at }, superseded_by }
    }
}

#[derive(Deserialize)]
struct Clock {
    now: DateTime<Utc>,
}

/// Operator calls the simulator makes to register and adopt its machines.
#[derive(Debug, Clone)]
pub struct FleetClient {
    endpoint: Endpoint,
}

impl FleetClient {
    /// A client for the server at `base` with an operator token.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> FleetClient {
        FleetClient { endpoint: Endpoint::new(http, base, token) }
    }

    /// `POST /v1/machines/import` (all or nothing); the registered machines in request order.
    pub async fn import(&self, specs: &[MachineSpec]) -> Result<Vec<MachineRef>, ClientError> {
        let request = self.endpoint.post("/v1/machines/import").json(specs).timeout(REQUEST_TIMEOUT * 4);
        let answer: Items<MachineRef> = json(send(request).await?).await?;
        Ok(answer.items)
    }

    /// Every machine carrying the label `key=value`, following `next_cursor` to the end.
    pub async fn machines_with_label(&self, key: &str, value: &str) -> Result<Vec<MachineRef>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("label", format!("{key}:{value}")), ("limit", "1000".to_owned())];
            if let Some(c) = cursor.take() {
                query.push(("cursor", c));
            }
            let page: Items<MachineRef> =
                json(send(self.endpoint.get("/v1/machines").query(&query)).await?).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }

    /// `GET /v1/regions`: the known regions and their capabilities.
    pub async fn regions(&self) -> Result<Vec<RegionRef>, ClientError> {
        let page: Items<RegionRef> = json(send(self.endpoint.get("/v1/regions?limit=1000")).await?).await?;
        Ok(page.items)
    }

    /// `GET /v1/releases?os=`: every release of `os` in the catalog, superseded ones included,
    /// following `next_cursor` to the end.
    pub async fn releases(&self, os: OsVersion) -> Result<Vec<Release>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let os: &'static str = os.into();
            let mut query = vec![("os", os.to_owned()), ("limit", "1000".to_owned())];
            if let Some(c) = cursor.take() {
                query.push(("cursor", c));
            }
            let page: Items<ReleaseItem> =
                json(send(self.endpoint.get("/v1/releases").query(&query)).await?).await?;
            all.extend(page.items.into_iter().map(Release::from));
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }

    /// `GET /v1/admin/clock`: the instant the service takes as now (a test installation may
    /// have moved it away from this machine's clock).
    pub async fn server_now(&self) -> Result<DateTime<Utc>, ClientError> {
        let clock: Clock = json(send(self.endpoint.get("/v1/admin/clock")).await?).await?;
        Ok(clock.now)
    }

    /// What the server recorded of a machine at its last assessment: its OS build and installed
    /// updates; `None` when it was never assessed.
    pub async fn recorded_state(&self, machine: Uuid) -> Result<Option<RecordedState>, ClientError> {
        let recorded: RecordedUpdates =
            json(send(self.endpoint.get(&format!("/v1/machines/{machine}/installed-updates"))).await?)
                .await?;
        Ok(match (recorded.assessed_at, recorded.os_build) {
            (Some(_), Some(os_build)) => Some(RecordedState { os_build, installed: recorded.items }),
            _ => None,
        })
    }

    /// Mints an agent token for a machine (`POST /v1/machines/{id}/agent-token`).
    pub async fn agent_token(&self, machine: Uuid, name: &str) -> Result<String, ClientError> {
        let request = self
            .endpoint
            .post(&format!("/v1/machines/{machine}/agent-token"))
            .json(&AgentTokenRequest { name });
        let created: CreatedToken = json(send(request).await?).await?;
        Ok(created.token)
    }
}
