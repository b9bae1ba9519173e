#Requires -Version 5.1
<#
.SYNOPSIS
    hotpatch's reference executor for Windows Server: the program the agent runs for each job
    (agent config: executor = "command"). It speaks the JSON contract of the command executor
    (docs: crates/agent/tests/programs/README.md and the contract): the job on stdin, ONE JSON
    object as the last line on stdout, free text on stderr.

.DESCRIPTION
    Kinds: assess, install, rollback, reboot (a claimed job on stdin), inventory, health ({} on
    stdin), and selftest (runs Select-HotpatchUpdates over the shared selection fixtures; not part
    of the contract).

    It uses the documented Windows Update Agent COM API (Microsoft.Update.Session), Get-HotFix,
    the registry (build, pending reboot), wusa.exe / DISM for uninstalls and shutdown.exe to
    SCHEDULE restarts (the agent waits for the restart; see the contract's "Reboots").

    Written for Windows PowerShell 5.1 (also runs on PowerShell 7). Not run on Linux CI.

.EXAMPLE
    Get-Content job.json | powershell -NoProfile -File hotpatch-executor.ps1 assess
.EXAMPLE
    powershell -NoProfile -File hotpatch-executor.ps1 selftest
#>
[CmdletBinding()]
param(
    # The kind, always the last argument the agent passes.
    [Parameter(Position = 0, Mandatory = $true)]
    [string] $Kind,

    # Services (comma separated, wildcards allowed) the health check does not require running,
    # on top of trigger-start services, which it always skips. A string, not an array: arguments
    # after powershell.exe -File arrive as plain strings.
    [string] $HealthIgnoreServices = 'gupdate,gupdatem,edgeupdate,edgeupdatem,MapsBroker,RemoteRegistry,sppsvc,BITS,UsoSvc,wuauserv,TrustedInstaller,CDPSvc,WbioSrvc,tiledatamodelsvc,dmwappushservice,ShellHWDetection,clr_optimization_*,SysMain',

    # Services (comma separated) that must be running whatever their start mode: the workload.
    [string] $HealthRequiredServices = '',

    # Delayed-start services are not required running until the machine has been up this long.
    [int] $DelayedStartGraceMinutes = 10,

    # A pending reboot makes the machine unhealthy (default: reported, not failing).
    [switch] $PendingRebootIsUnhealthy,

    # Seconds between scheduling a restart and the restart (shutdown.exe /t).
    [int] $RebootDelaySeconds = 60,

    # A folder of .msu files (named with their KB) a rollback may reinstall a baseline from when
    # Windows Update no longer offers it.
    [string] $PackageDir = '',

    # Where selftest finds the fixtures (default: fixtures\selection beside this script, else
    # ..\fixtures\selection as in the repository).
    [string] $FixturesDir = ''
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$Classifications = @('critical', 'security', 'update_rollup', 'feature_pack', 'service_pack',
    'definition', 'tools', 'updates', 'dotnet', 'driver', 'firmware')

# WUA's classification categories (Category.Type = 'UpdateClassification'). The ids do not change
# with the UI language, so they are matched first; the English names are a fallback. WUA has no
# ".NET" classification: .NET updates carry their own (security, updates, ...), so this executor
# never reports 'dotnet' (nor 'firmware').
$CategoryIds = @{
    'e6cf1350-c01b-414d-a61f-263d14d133b4' = 'critical'
    '0fa1201d-4330-4fa8-8ae9-b877473b6441' = 'security'
    '28bc880e-0592-4cbf-8f95-c79b17911d5f' = 'update_rollup'
    'b54e7d24-7add-428f-8b75-90a396fa584f' = 'feature_pack'
    '68c5b0a3-d1a6-4553-ae49-01d3a7827828' = 'service_pack'
    'e0789628-ce08-4437-be74-2495b842f43b' = 'definition'
    'b4832bd8-e735-4761-8daf-37f882276dab' = 'tools'
    'cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83' = 'updates'
    'ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0' = 'driver'
}
$CategoryNames = @{
    'Critical Updates' = 'critical'; 'Security Updates' = 'security'; 'Update Rollups' = 'update_rollup'
    'Feature Packs' = 'feature_pack'; 'Service Packs' = 'service_pack'; 'Definition Updates' = 'definition'
    'Tools' = 'tools'; 'Updates' = 'updates'; 'Drivers' = 'driver'
}

$CurrentVersionKey = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$RebootPendingKeys = @(
    'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending',
    'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
)

class InvalidPayload : System.Exception {
    InvalidPayload([string] $message) : base("invalid payload: $message") {}
}

# ------------------------------------------------------------------------------------ plumbing

function Write-Log([string] $Message) {
    # stderr only: stdout carries the answer.
    [Console]::Error.WriteLine("hotpatch-executor: $Message")
}

function Write-Stdout([string] $Line) {
    # UTF-8 bytes straight to the handle: the console code page (and setting it, which fails
    # without a console, as under a service) does not matter.
    $bytes = [System.Text.UTF8Encoding]::new($false).GetBytes($Line + "`n")
    $stdout = [Console]::OpenStandardOutput()
    $stdout.Write($bytes, 0, $bytes.Length)
    $stdout.Flush()
}

function Write-Answer($Object) {
    # One line (-Compress): the agent reads the last non-empty line of stdout.
    Write-Stdout (ConvertTo-Json -InputObject $Object -Depth 10 -Compress)
}

function Read-Stdin {
    $reader = [System.IO.StreamReader]::new([Console]::OpenStandardInput(), [System.Text.UTF8Encoding]::new($false))
    return $reader.ReadToEnd()
}

function Get-Field($Object, [string] $Name) {
    # The leading comma keeps an empty or one-element array whole: PowerShell would unroll it.
    if ($null -eq $Object) { return $null }
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) { return $null }
    return , $property.Value
}

function ConvertTo-Kb($Value) {
    # As the domain reads a KB: 'KB' or 'kb' or nothing, then 6 to 8 digits; written 'KB' + digits.
    if ($Value -is [string] -and $Value -cmatch '^(?:KB|kb)?([0-9]{6,8})$') { return "KB$($Matches[1])" }
    throw [InvalidPayload]::new("'$Value' is not a KB number such as KB5034439")
}

function ConvertTo-KbList($Values, [string] $Field) {
    $list = New-Object 'System.Collections.Generic.List[string]'
    if ($null -eq $Values) { return , $list }
    if ($Values -isnot [array]) { throw [InvalidPayload]::new("$Field must be a list of KBs") }
    foreach ($v in $Values) { $list.Add((ConvertTo-Kb $v)) }
    return , $list
}

function Get-Today { (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd') }

function Get-StateDir {
    $dir = $env:HOTPATCH_STATE_DIR
    if (-not $dir) { $dir = Join-Path $env:ProgramData 'hotpatch\agent\program' }
    if (-not (Test-Path $dir)) { New-Item -ItemType Directory -Path $dir -Force | Out-Null }
    return $dir
}

# What this executor installed, KB -> date: Get-HotFix does not list every update (hotpatches,
# definitions) nor always an install date, and 'installed_by: hotpatch' needs a record.
function Read-InstallRecord {
    $path = Join-Path (Get-StateDir) 'installed.json'
    $record = @{}
    if (Test-Path $path) {
        $json = ConvertFrom-Json -InputObject (Get-Content -Raw -Path $path)
        foreach ($p in $json.PSObject.Properties) { $record[$p.Name] = [string] $p.Value }
    }
    return $record
}

function Write-InstallRecord([hashtable] $Record) {
    $path = Join-Path (Get-StateDir) 'installed.json'
    $tmp = "$path.tmp"
    Set-Content -Path $tmp -Value (ConvertTo-Json -InputObject $Record -Compress) -Encoding UTF8
    Move-Item -Path $tmp -Destination $path -Force
}

# ------------------------------------------------------------------------------------ selection (pure)

<#
.SYNOPSIS
    The KBs an install payload selects among the available updates (payload.rs's rules).
.DESCRIPTION
    With kbs: exactly those (payload order). Without: every available update whose classification
    is in classifications (absent: critical and security; []: none) plus the available updates in
    kb_include (available order). Then kb_exclude removes KBs, and exclude_kbs_requiring_reboot
    removes the ones that need a reboot: as the payload's requires_reboot says when given, else as
    the update's requires_reboot (an update not in the list: no). Plain objects in, canonical KB
    strings out; no Windows API, so selftest checks it against the shared fixtures.
.PARAMETER Payload
    The install payload (from ConvertFrom-Json; $null is the default payload).
.PARAMETER Available
    Available updates as the contract writes them: kb, title, classification, requires_reboot.
#>
function Select-HotpatchUpdates {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [AllowNull()] $Payload,
        [Parameter(Mandatory = $true)] [AllowEmptyCollection()] [object[]] $Available
    )
    $kbs = ConvertTo-KbList (Get-Field $Payload 'kbs') 'kbs'
    $include = ConvertTo-KbList (Get-Field $Payload 'kb_include') 'kb_include'
    $exclude = ConvertTo-KbList (Get-Field $Payload 'kb_exclude') 'kb_exclude'
    $wanted = Get-Field $Payload 'classifications'
    if ($null -eq $wanted) { $wanted = @('critical', 'security') }
    foreach ($c in $wanted) {
        if ($Classifications -cnotcontains $c) { throw [InvalidPayload]::new("unknown classification '$c'") }
    }
    $payloadReboot = Get-Field $Payload 'requires_reboot'
    $excludeReboot = Get-Field $Payload 'exclude_kbs_requiring_reboot'

    $byKb = @{}
    foreach ($u in $Available) { $byKb[(ConvertTo-Kb $u.kb)] = $u }

    $chosen = New-Object 'System.Collections.Generic.List[string]'
    if ($kbs.Count -gt 0) {
        foreach ($kb in $kbs) { if (-not $chosen.Contains($kb)) { $chosen.Add($kb) } }
    } else {
        foreach ($u in $Available) {
            $kb = ConvertTo-Kb $u.kb
            if (($wanted -ccontains $u.classification -or $include.Contains($kb)) -and -not $chosen.Contains($kb)) {
                $chosen.Add($kb)
            }
        }
    }
    foreach ($kb in $chosen.ToArray()) {
        $needsReboot = $false
        if ($null -ne $payloadReboot) { $needsReboot = [bool] $payloadReboot }
        elseif ($byKb.ContainsKey($kb)) { $needsReboot = [bool] $byKb[$kb].requires_reboot }
        if ($exclude.Contains($kb) -or ($excludeReboot -eq $true -and $needsReboot)) { [void] $chosen.Remove($kb) }
    }
    return $chosen.ToArray()
}

# ------------------------------------------------------------------------------------ the machine

function Get-OsBuild {
    $cv = Get-ItemProperty -Path $CurrentVersionKey
    return "$($cv.CurrentBuild).$($cv.UBR)"
}

function Test-RebootPending {
    foreach ($key in $RebootPendingKeys) { if (Test-Path $key) { return $true } }
    return [bool] (New-Object -ComObject Microsoft.Update.SystemInfo).RebootRequired
}

function Get-WuaClassification($Update) {
    foreach ($category in $Update.Categories) {
        if ($category.Type -ne 'UpdateClassification') { continue }
        $id = ([string] $category.CategoryID).ToLowerInvariant()
        if ($CategoryIds.ContainsKey($id)) { return $CategoryIds[$id] }
        if ($CategoryNames.ContainsKey([string] $category.Name)) { return $CategoryNames[[string] $category.Name] }
    }
    return $null
}

function Get-WuaKb($Update) {
    foreach ($id in $Update.KBArticleIDs) { return "KB$id" }
    return $null
}

function New-WuaSession {
    $session = New-Object -ComObject Microsoft.Update.Session
    $session.ClientApplicationID = 'hotpatch'
    return $session
}

# Runs a WUA search and returns, for each update with a KB and a known classification, the
# contract's shape plus the COM object (in .Wua) for downloading and installing.
function Find-WuaUpdates($Session, [string] $Criteria) {
    Write-Log "searching Windows Update: $Criteria"
    $result = $Session.CreateUpdateSearcher().Search($Criteria)
    $found = New-Object 'System.Collections.Generic.List[object]'
    foreach ($u in $result.Updates) {
        $kb = Get-WuaKb $u
        $class = Get-WuaClassification $u
        if (-not $kb -or -not $class) {
            Write-Log "skipping '$($u.Title)': no KB or no classification hotpatch knows"
            continue
        }
        $found.Add([pscustomobject] @{
                kb              = $kb
                title           = [string] $u.Title
                classification  = $class
                # RebootBehavior: 0 never reboots (hotpatches), 1 always, 2 can request one.
                requires_reboot = ([int] $u.InstallationBehavior.RebootBehavior -ne 0)
                Wua             = $u
            })
    }
    return $found.ToArray()
}

function Get-Inventory($Session) {
    $record = Read-InstallRecord
    $wuaInstalled = @{}
    foreach ($u in @(Find-WuaUpdates $Session "IsInstalled=1 and Type='Software'")) { $wuaInstalled[$u.kb] = $u }

    $installed = New-Object 'System.Collections.Generic.List[object]'
    $seen = @{}
    foreach ($hotfix in @(Get-HotFix)) {
        $kb = [string] $hotfix.HotFixID
        if ($kb -notmatch '^KB[0-9]{6,8}$' -or $seen.ContainsKey($kb)) { continue }
        $date = $null
        if ($hotfix.InstalledOn) { $date = ([datetime] $hotfix.InstalledOn).ToString('yyyy-MM-dd', [Globalization.CultureInfo]::InvariantCulture) }
        elseif ($record.ContainsKey($kb)) { $date = $record[$kb] }
        else { Write-Log "skipping $kb from Get-HotFix: no install date"; continue }
        $seen[$kb] = $true
        $entry = [ordered] @{ kb = $kb }
        if ($wuaInstalled.ContainsKey($kb)) {
            $entry.title = $wuaInstalled[$kb].title
            $entry.classification = $wuaInstalled[$kb].classification
        } elseif ($hotfix.Description -eq 'Security Update') { $entry.classification = 'security' }
        elseif ($hotfix.Description -eq 'Update') { $entry.classification = 'updates' }
        $entry.installed_on = $date
        if ($record.ContainsKey($kb)) { $entry.installed_by = 'hotpatch' }
        $installed.Add($entry)
    }
    # Installed through WUA but not in Get-HotFix (e.g. a hotpatch): listed when this executor
    # installed it, since only then is the date known.
    foreach ($kb in $wuaInstalled.Keys) {
        if ($seen.ContainsKey($kb) -or -not $record.ContainsKey($kb)) { continue }
        $u = $wuaInstalled[$kb]
        $installed.Add([ordered] @{ kb = $kb; title = $u.title; classification = $u.classification
                installed_on = $record[$kb]; installed_by = 'hotpatch' })
    }

    $available = New-Object 'System.Collections.Generic.List[object]'
    foreach ($u in @(Find-WuaUpdates $Session "IsInstalled=0 and Type='Software'")) {
        $available.Add([ordered] @{ kb = $u.kb; title = $u.title; classification = $u.classification; requires_reboot = $u.requires_reboot })
    }
    return [ordered] @{
        os_build          = Get-OsBuild
        reboot_pending    = Test-RebootPending
        installed_updates = @($installed.ToArray())
        available_updates = @($available.ToArray())
    }
}

# Get-HotFix first (cheap), then WUA's installed updates (a hotpatch may be only there).
function Test-KbInstalled($Session, [string] $Kb) {
    if (Get-HotFix -Id $Kb -ErrorAction SilentlyContinue) { return $true }
    return @(Find-WuaUpdates $Session "IsInstalled=1 and Type='Software'" | Where-Object { $_.kb -eq $Kb }).Count -gt 0
}

function Remove-FromInstallRecord([string] $Kb) {
    $record = Read-InstallRecord
    if ($record.ContainsKey($Kb)) { $record.Remove($Kb); Write-InstallRecord $record }
}

# Schedules the restart (the agent waits for it): exits at once, the machine restarts in
# $RebootDelaySeconds. Reason p:2:17 = planned, operating system hotfix.
function Request-Restart([string] $JobId) {
    # Windows PowerShell turns a native command's stderr into errors, which 'Stop' would throw.
    $ErrorActionPreference = 'Continue'
    $output = & shutdown.exe /r /t $RebootDelaySeconds /d p:2:17 /c "hotpatch job $JobId" 2>&1
    $code = $LASTEXITCODE
    if ($code -eq 1190) { Write-Log 'a restart was already scheduled: keeping it'; return }
    if ($code -ne 0) { throw "shutdown.exe /r failed with exit code ${code}: $output" }
    Write-Log "restart scheduled in $RebootDelaySeconds s"
}

function Format-HResult($HResult) { '0x{0:X8}' -f ([int64] $HResult -band [int64] 4294967295) }

function Install-WuaUpdates($Session, [object[]] $Updates) {
    $collection = New-Object -ComObject Microsoft.Update.UpdateColl
    foreach ($u in $Updates) {
        if (-not $u.Wua.EulaAccepted) { $u.Wua.AcceptEula() }
        [void] $collection.Add($u.Wua)  # Add returns an index: keep it off stdout
    }
    $downloader = $Session.CreateUpdateDownloader()
    $downloader.Updates = $collection
    Write-Log "downloading $($collection.Count) update(s)"
    $download = $downloader.Download()
    if ($download.ResultCode -ne 2 -and $download.ResultCode -ne 3) {
        throw "download failed (result code $($download.ResultCode), $(Format-HResult $download.HResult))"
    }
    $installer = $Session.CreateUpdateInstaller()
    if ($installer.RebootRequiredBeforeInstallation) {
        throw 'Windows needs a restart before it installs anything (run a reboot job first)'
    }
    $installer.Updates = $collection
    Write-Log "installing $($collection.Count) update(s)"
    $result = $installer.Install()
    $failures = @()
    for ($i = 0; $i -lt $collection.Count; $i++) {
        $r = $result.GetUpdateResult($i)
        if ($r.ResultCode -ne 2 -and $r.ResultCode -ne 3) {
            $failures += "$($Updates[$i].kb): result code $($r.ResultCode), $(Format-HResult $r.HResult)"
        }
    }
    if ($failures.Count -gt 0) { throw "install failed: $($failures -join '; ')" }
    return [bool] $result.RebootRequired
}

# ------------------------------------------------------------------------------------ kinds

function Invoke-Assess($Job) {
    $session = New-WuaSession
    $inventory = Get-Inventory $session
    return [ordered] @{ outcome = 'succeeded'; rebooted = $false; reboot_pending = $inventory.reboot_pending; inventory = $inventory }
}

function Invoke-Install($Job) {
    $payload = $Job.payload
    $reboot = Get-Field $payload 'reboot'
    if ($null -eq $reboot) { $reboot = 'if_required' }
    if (@('if_required', 'never', 'always') -cnotcontains $reboot) { throw [InvalidPayload]::new("reboot '$reboot' is not if_required, never or always") }
    $payloadReboot = Get-Field $payload 'requires_reboot'

    $session = New-WuaSession
    $pendingBefore = Test-RebootPending
    $available = @(Find-WuaUpdates $session "IsInstalled=0 and Type='Software'")
    $selected = @(Select-HotpatchUpdates -Payload $payload -Available $available)

    $toInstall = @()
    foreach ($kb in $selected) {
        $update = $available | Where-Object { $_.kb -eq $kb } | Select-Object -First 1
        if ($update) { $toInstall += $update }
        elseif (Test-KbInstalled $session $kb) { Write-Log "$kb is installed already (a retried attempt)" }
        else { throw "$kb is not offered by Windows Update on this machine" }
    }
    $needsReboot = $false
    if ($toInstall.Count -gt 0) {
        $needsReboot = Install-WuaUpdates $session $toInstall
        $record = Read-InstallRecord
        foreach ($u in $toInstall) { $record[$u.kb] = Get-Today }
        Write-InstallRecord $record
    }
    if ($payloadReboot -eq $true -and $toInstall.Count -gt 0) { $needsReboot = $true }

    $restart = switch ($reboot) {
        'always' { $true }
        'never' { $false }
        default { $needsReboot -or $pendingBefore }
    }
    if ($restart) { Request-Restart $Job.id }
    # After a scheduled restart nothing is pending any more: the answer speaks for then.
    $pending = (-not $restart) -and ($needsReboot -or (Test-RebootPending))
    return [ordered] @{ outcome = 'succeeded'; installed = @($selected); rebooted = $restart; reboot_pending = $pending }
}

# Uninstalling is best-effort. wusa.exe /uninstall removes most KB packages, but not the combined
# SSU+LCU package Windows Server has shipped since 2021, and a hotpatch is serviced as part of
# that same LCU ("RollupFix") package: it goes away with the LCU package version that carries it.
# So when wusa fails, the package is looked up with Get-WindowsPackage (a name with the KB, or
# the RollupFix package of the release's build) and removed with Remove-WindowsPackage. If neither
# works the step fails with the reason; the operator then removes it by hand (DISM /Remove-Package).
function Uninstall-Kb($Session, [string] $Kb, [string] $Build) {
    if (-not (Test-KbInstalled $Session $Kb)) { Write-Log "$Kb is not installed: nothing to uninstall"; return }
    $digits = $Kb.Substring(2)
    Write-Log "wusa.exe /uninstall /kb:$digits"
    $process = Start-Process -FilePath wusa.exe -ArgumentList "/uninstall /kb:$digits /quiet /norestart" -Wait -PassThru
    # 3010: removed, the restart finishes it; 0x240006/0x240007: not installed. A 0 is checked,
    # as wusa may ignore /quiet uninstalls and do nothing.
    if (@(3010, 2359302, 2359303) -contains $process.ExitCode) { Remove-FromInstallRecord $Kb; return }
    if ($process.ExitCode -eq 0 -and -not (Test-KbInstalled $Session $Kb)) { Remove-FromInstallRecord $Kb; return }
    Write-Log "wusa.exe exited with $($process.ExitCode); looking for the package with DISM"
    $package = Get-WindowsPackage -Online | Where-Object {
        $_.PackageName -like "*$Kb*" -or ($Build -and $_.PackageName -like "*RollupFix*~$Build.*")
    } | Select-Object -First 1
    if (-not $package) { throw "cannot uninstall ${Kb}: wusa.exe exited with $($process.ExitCode) and no DISM package matches it" }
    Write-Log "Remove-WindowsPackage $($package.PackageName)"
    Remove-WindowsPackage -Online -PackageName $package.PackageName -NoRestart | Out-Null
    Remove-FromInstallRecord $Kb
}

function Install-Baseline($Session, [string] $Kb) {
    if (Test-KbInstalled $Session $Kb) { Write-Log "$Kb is installed: nothing to reinstall"; return }
    $offered = @(Find-WuaUpdates $Session "IsInstalled=0 and Type='Software'" | Where-Object { $_.kb -eq $Kb })
    if ($offered.Count -gt 0) { [void] (Install-WuaUpdates $Session $offered); return }
    if ($PackageDir) {
        $msu = Get-ChildItem -Path $PackageDir -Filter "*$Kb*.msu" -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($msu) {
            Write-Log "wusa.exe $($msu.FullName)"
            $process = Start-Process -FilePath wusa.exe -ArgumentList "`"$($msu.FullName)`" /quiet /norestart" -Wait -PassThru
            if (@(0, 3010, 2359302) -contains $process.ExitCode) { return }
            throw "installing $($msu.Name) failed: wusa.exe exited with $($process.ExitCode)"
        }
    }
    throw "$Kb is not offered by Windows Update and no .msu for it is in -PackageDir"
}

function Invoke-Rollback($Job) {
    $payload = $Job.payload
    $steps = Get-Field $payload 'steps'
    $build = Get-Field $payload 'build'
    $session = New-WuaSession
    $installed = @()
    $rebooted = $false
    if ($null -eq $steps -or @($steps).Count -eq 0) {
        # Older jobs: remove the latest update this executor installed, and restart.
        $record = Read-InstallRecord
        $latest = $record.GetEnumerator() | Sort-Object Value | Select-Object -Last 1
        if (-not $latest) { throw 'no installed update to roll back' }
        Uninstall-Kb $session $latest.Key $null
        $steps = @([pscustomobject] @{ action = 'reboot' })
    }
    $baselineBuild = $null
    foreach ($step in $steps) { if ($step.action -eq 'install') { $baselineBuild = $step.release.build } }
    foreach ($step in $steps) {
        switch ($step.action) {
            'uninstall' { Uninstall-Kb $session (ConvertTo-Kb $step.release.kb) ([string] $step.release.build) }
            'install' {
                $kb = ConvertTo-Kb $step.release.kb
                Install-Baseline $session $kb
                $installed += $kb
            }
            'reboot' {
                Write-Log "restarting into build $(if ($build) { $build } else { $baselineBuild })"
                Request-Restart $Job.id
                $rebooted = $true
            }
            default { throw [InvalidPayload]::new("unknown rollback step '$($step.action)'") }
        }
    }
    $pending = (-not $rebooted) -and (Test-RebootPending)
    return [ordered] @{ outcome = 'succeeded'; installed = $installed; rebooted = $rebooted; reboot_pending = $pending }
}

function Invoke-Reboot($Job) {
    Request-Restart $Job.id
    return [ordered] @{ outcome = 'succeeded'; rebooted = $true; reboot_pending = $false }
}

function Split-List([string] $Text) { @($Text -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ }) }

function Get-Health {
    $checks = New-Object 'System.Collections.Generic.List[object]'
    $ignore = Split-List $HealthIgnoreServices
    $uptime = (Get-Date) - (Get-CimInstance Win32_OperatingSystem).LastBootUpTime
    $stopped = @()
    foreach ($service in @(Get-CimInstance Win32_Service -Filter "StartMode='Auto' AND State<>'Running'")) {
        $name = [string] $service.Name
        if (@($ignore | Where-Object { $name -like $_ }).Count -gt 0) { continue }
        $key = "HKLM:\SYSTEM\CurrentControlSet\Services\$name"
        # Trigger-start services stop by design when idle.
        if (Test-Path "$key\TriggerInfo") { continue }
        $delayed = (Get-ItemProperty -Path $key -Name DelayedAutostart -ErrorAction SilentlyContinue)
        if ($delayed -and $delayed.DelayedAutostart -eq 1 -and $uptime.TotalMinutes -lt $DelayedStartGraceMinutes) { continue }
        $stopped += $name
    }
    foreach ($name in (Split-List $HealthRequiredServices)) {
        $service = Get-Service -Name $name -ErrorAction SilentlyContinue
        if (-not $service) { $stopped += "$name (not installed)" }
        elseif ($service.Status -ne 'Running' -and $stopped -notcontains $name) { $stopped += $name }
    }
    $check = [ordered] @{ name = 'services'; status = 'healthy' }
    if ($stopped.Count -gt 0) { $check.status = 'unhealthy'; $check.detail = "not running: $($stopped -join ', ')" }
    $checks.Add($check)

    $pending = Test-RebootPending
    $check = [ordered] @{ name = 'reboot_pending'; status = 'healthy' }
    if ($pending) {
        $check.detail = 'a reboot is pending'
        if ($PendingRebootIsUnhealthy) { $check.status = 'unhealthy' }
    }
    $checks.Add($check)

    $status = 'healthy'
    if (@($checks | Where-Object { $_.status -eq 'unhealthy' }).Count -gt 0) { $status = 'unhealthy' }
    return [ordered] @{ status = $status; checks = @($checks.ToArray()) }
}

function Invoke-Selftest {
    $dir = $FixturesDir
    if (-not $dir) {
        $dir = Join-Path $PSScriptRoot 'fixtures\selection'
        if (-not (Test-Path $dir)) { $dir = Join-Path $PSScriptRoot '..\fixtures\selection' }
    }
    $files = @(Get-ChildItem -Path $dir -Filter '*.json')
    if ($files.Count -eq 0) { Write-Log "no fixtures in $dir"; return 1 }
    $failed = 0
    foreach ($file in $files) {
        $fixture = ConvertFrom-Json -InputObject (Get-Content -Raw -Path $file.FullName)
        $expected = @($fixture.expected) -join ','
        try {
            $actual = @(Select-HotpatchUpdates -Payload $fixture.payload -Available @($fixture.available)) -join ','
        } catch { $actual = "error: $($_.Exception.Message)" }
        if ($actual -cne $expected) {
            $failed++
            Write-Log "FAIL $($file.Name): expected [$expected], got [$actual]"
        }
    }
    Write-Stdout "$($files.Count - $failed) passed, $failed failed"
    if ($failed -gt 0) { return 1 }
    return 0
}

# ------------------------------------------------------------------------------------ main

if ($Kind -eq 'selftest') { exit (Invoke-Selftest) }

$jobKinds = @('assess', 'install', 'rollback', 'reboot')
if ((@('inventory', 'health') + $jobKinds) -cnotcontains $Kind) {
    Write-Log "unknown kind '$Kind' (expected assess, install, rollback, reboot, inventory, health or selftest)"
    exit 2
}
try {
    $request = ConvertFrom-Json -InputObject (Read-Stdin)
} catch {
    Write-Log "stdin is not JSON: $($_.Exception.Message)"
    exit 2
}
if ($null -eq $request) { Write-Log 'stdin must hold a JSON object'; exit 2 }

if ($Kind -eq 'inventory') { Write-Answer (Get-Inventory (New-WuaSession)); exit 0 }
if ($Kind -eq 'health') { Write-Answer (Get-Health); exit 0 }

foreach ($field in @('id', 'kind', 'machine_id', 'attempt', 'payload', 'lease')) {
    if ($null -eq $request.PSObject.Properties[$field]) { Write-Log "the claimed job lacks $field"; exit 2 }
}
if ($request.kind -ne $Kind) { Write-Log "invoked as $Kind for a job of kind '$($request.kind)'"; exit 2 }
Write-Log "$Kind job $($request.id), attempt $($request.attempt), deadline $env:HOTPATCH_DEADLINE"
try {
    $answer = switch ($Kind) {
        'assess' { Invoke-Assess $request }
        'install' { Invoke-Install $request }
        'rollback' { Invoke-Rollback $request }
        'reboot' { Invoke-Reboot $request }
    }
} catch {
    # The program could answer: the job failed, and says why.
    $message = $_.Exception.Message
    Write-Log "failed: $message"
    $pending = $false
    try { $pending = Test-RebootPending } catch { Write-Log "cannot read the pending reboot: $($_.Exception.Message)" }
    $answer = [ordered] @{ outcome = 'failed'; error = $message; reboot_pending = $pending }
}
Write-Answer $answer
exit 0
