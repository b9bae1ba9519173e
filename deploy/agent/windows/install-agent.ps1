#Requires -Version 5.1
#Requires -RunAsAdministrator
<#
.SYNOPSIS
    Installs hotpatch-agent as a Windows service that runs jobs through hotpatch-executor.ps1.

.DESCRIPTION
    Copies hotpatch-agent.exe and the executor to C:\Program Files\hotpatch, writes
    C:\ProgramData\hotpatch\agent\agent.toml and the token file (readable by SYSTEM and
    Administrators only), registers the hotpatch-agent service (Automatic, restarted on failure)
    and starts it. Run it again to upgrade: files and config are rewritten, the service is kept.

.EXAMPLE
    .\install-agent.ps1 -Server https://hotpatch.example.com -TokenFile .\agent-token.txt
.EXAMPLE
    .\install-agent.ps1 -Server https://hotpatch.internal:8443 -CaFile .\internal-ca.pem
    (asks for the token)
#>
[CmdletBinding()]
param(
    # The hotpatch server's base URL.
    [Parameter(Mandatory = $true)] [string] $Server,
    # A file holding the machine's agent token; when absent the token is asked for.
    [string] $TokenFile = '',
    # A PEM file of the CA that signed the server's certificate, when it is not a public one.
    [string] $CaFile = '',
    # Where hotpatch-agent.exe and hotpatch-executor.ps1 are (default: beside this script).
    [string] $SourceDir = $PSScriptRoot,
    # Register the service but do not start it.
    [switch] $NoStart
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$ProgramDir = 'C:\Program Files\hotpatch'
$DataDir = 'C:\ProgramData\hotpatch\agent'
$ConfigPath = Join-Path $DataDir 'agent.toml'
$TokenPath = Join-Path $DataDir 'token'
$ServiceName = 'hotpatch-agent'

# SYSTEM and Administrators only, nothing inherited.
function Protect-Path([string] $Path) {
    $acl = Get-Acl -Path $Path
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($rule in @($acl.Access)) { [void] $acl.RemoveAccessRule($rule) }
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {  # SYSTEM, BUILTIN\Administrators
        $identity = (New-Object System.Security.Principal.SecurityIdentifier $sid)
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule $identity, 'FullControl', 'Allow'
        $acl.AddAccessRule($rule)
    }
    Set-Acl -Path $Path -AclObject $acl
}

# A TOML basic string: backslashes and quotes escaped.
function ConvertTo-TomlString([string] $Text) { '"' + ($Text -replace '\\', '\\' -replace '"', '\"') + '"' }

$agentExe = Join-Path $SourceDir 'hotpatch-agent.exe'
$executor = Join-Path $SourceDir 'hotpatch-executor.ps1'
foreach ($file in @($agentExe, $executor)) { if (-not (Test-Path $file)) { throw "$file is missing" } }

$service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($service -and $service.Status -ne 'Stopped') {
    Write-Host "stopping $ServiceName to replace its files"
    Stop-Service -Name $ServiceName
}

New-Item -ItemType Directory -Force -Path $ProgramDir, $DataDir | Out-Null
Protect-Path $DataDir
Copy-Item -Path $agentExe, $executor -Destination $ProgramDir -Force
# The selection fixtures, so 'hotpatch-executor.ps1 selftest' can run on the machine.
$fixtures = Join-Path $SourceDir '..\fixtures\selection'
if (Test-Path $fixtures) {
    New-Item -ItemType Directory -Force -Path (Join-Path $ProgramDir 'fixtures') | Out-Null
    Copy-Item -Path $fixtures -Destination (Join-Path $ProgramDir 'fixtures') -Recurse -Force
}

if ($TokenFile) {
    $token = (Get-Content -Raw -Path $TokenFile).Trim()
} else {
    $secure = Read-Host -AsSecureString -Prompt 'Agent token'
    $bstr = [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure)
    try { $token = [Runtime.InteropServices.Marshal]::PtrToStringBSTR($bstr) }
    finally { [Runtime.InteropServices.Marshal]::ZeroFreeBSTR($bstr) }
}
if (-not $token) { throw 'the token is empty' }
# Created empty and locked down before the secret goes in.
Set-Content -Path $TokenPath -Value '' -NoNewline -Encoding ASCII
Protect-Path $TokenPath
Set-Content -Path $TokenPath -Value $token -NoNewline -Encoding ASCII

$executorPath = Join-Path $ProgramDir 'hotpatch-executor.ps1'
$arguments = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $executorPath) |
    ForEach-Object { ConvertTo-TomlString $_ }
$lines = @(
    '# Written by install-agent.ps1; run it again rather than editing by hand.'
    "server = $(ConvertTo-TomlString $Server)"
    "token_file = $(ConvertTo-TomlString $TokenPath)"
    "state_dir = $(ConvertTo-TomlString $DataDir)"
    'executor = "command"'
    'program = "powershell.exe"'
    "args = [$($arguments -join ', ')]"
)
if ($CaFile) {
    $caPath = Join-Path $DataDir 'ca.pem'
    Copy-Item -Path $CaFile -Destination $caPath -Force
    $lines += "ca_file = $(ConvertTo-TomlString $caPath)"
}
# UTF-8 without a byte order mark, which TOML readers may refuse.
[System.IO.File]::WriteAllLines($ConfigPath, [string[]] $lines, [System.Text.UTF8Encoding]::new($false))
Write-Host "wrote $ConfigPath"

if (-not $service) {
    New-Service -Name $ServiceName -DisplayName 'hotpatch agent' `
        -Description 'Runs hotpatch jobs (assess, install, rollback, reboot) on this machine.' `
        -BinaryPathName '"C:\Program Files\hotpatch\hotpatch-agent.exe" service --config "C:\ProgramData\hotpatch\agent\agent.toml" --log-file "C:\ProgramData\hotpatch\agent\agent.log"' `
        -StartupType Automatic | Out-Null
    Write-Host "registered the $ServiceName service"
}
# Restart after 5 s, 5 s, then 60 s; the failure count resets after a day.
& sc.exe failure $ServiceName reset= 86400 actions= restart/5000/restart/5000/restart/60000 | Out-Null
if ($LASTEXITCODE -ne 0) { throw "sc.exe failure exited with $LASTEXITCODE" }

if (-not $NoStart) {
    Start-Service -Name $ServiceName
    Write-Host "$ServiceName is $((Get-Service -Name $ServiceName).Status)"
}
