//! `hotpatch-agent service`: the agent as a Windows service. The service manager starts the
//! process, which hands its main thread to the service dispatcher; the dispatcher calls
//! [`service_main`], which runs the agent (as `run` would, with the same options) until the
//! manager asks it to stop (Stop, Shutdown, Preshutdown), then reports the service stopped.
//!
//! Windows only; not run on this project's Linux CI (checked there with `cargo check --target
//! x86_64-pc-windows-gnu`). `deploy/agent/windows/install-agent.ps1` registers the service.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

use crate::RunArgs;

/// The service's name, as `install-agent.ps1` registers it.
pub const NAME: &str = "hotpatch-agent";

/// The options `service` was started with, for the dispatcher's callback (it takes none).
static ARGS: Mutex<Option<RunArgs>> = Mutex::new(None);

define_windows_service!(ffi_service_main, service_main);

/// Hands this thread to the service dispatcher until the service stops.
pub fn start(args: RunArgs) -> ExitCode {
    if let Ok(mut slot) = ARGS.lock() {
        *slot = Some(args);
    }
    match service_dispatcher::start(NAME, ffi_service_main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "not started by the service manager (use `run` from a console)");
            ExitCode::FAILURE
        }
    }
}

fn service_main(_: Vec<OsString>) {
    let Some(args) = ARGS.lock().ok().and_then(|mut a| a.take()) else { return };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let handler = move |event| match event {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = match service_control_handler::register(NAME, handler) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot register with the service manager");
            return;
        }
    };
    let report = |state, accept, code| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        });
    };
    report(ServiceState::Running, ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN, 0);
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(crate::run(args, cancel)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            ExitCode::FAILURE
        }
    };
    // ERROR_SERVICE_SPECIFIC_ERROR-free: 0 on a clean stop, 1 (ERROR_INVALID_FUNCTION) otherwise,
    // which the failure actions (restart) act on.
    let code = if code == ExitCode::SUCCESS { 0 } else { 1 };
    report(ServiceState::Stopped, ServiceControlAccept::empty(), code);
}
