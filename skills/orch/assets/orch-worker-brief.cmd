@echo off
rem Launcher for orch-worker-brief, part of a copyable skill folder. It runs the
rem self-contained Windows binary from bin\ beside it; where there is none it
rem runs the single-file bundle orch.mjs with Deno, Node.js or Bun; else it
rem says what to install. Arguments are passed through as given (%*).
setlocal
set "ORCH_ENTRY=orch-worker-brief"
set "HERE=%~dp0"

rem The inbox launcher a worker brief should name (orch-worker-brief reads it).
if defined ORCH_INBOX_COMMAND goto :target
set "ORCH_INBOX_COMMAND=%HERE%inbox.cmd"
for %%I in ("%HERE%..\..\inbox\assets\inbox.cmd") do if exist "%%~fI" set "ORCH_INBOX_COMMAND=%%~fI"

:target
set "ARCH=%PROCESSOR_ARCHITECTURE%"
if defined PROCESSOR_ARCHITEW6432 set "ARCH=%PROCESSOR_ARCHITEW6432%"
set "BIN="
rem Windows on ARM64 runs the x64 binary under its built-in emulation.
if /I "%ARCH%"=="AMD64" set "BIN=%HERE%bin\orch-windows-x64.exe"
if /I "%ARCH%"=="ARM64" set "BIN=%HERE%bin\orch-windows-x64.exe"
if not defined BIN goto :runtime
if not exist "%BIN%" goto :runtime
"%BIN%" %*
exit /b %ERRORLEVEL%

:runtime
set "BUNDLE=%HERE%orch.mjs"
if not exist "%BUNDLE%" goto :none
where deno >nul 2>nul
if errorlevel 1 goto :node
deno run -A --quiet "%BUNDLE%" %*
exit /b %ERRORLEVEL%
:node
where node >nul 2>nul
if errorlevel 1 goto :bun
node "%BUNDLE%" %*
exit /b %ERRORLEVEL%
:bun
where bun >nul 2>nul
if errorlevel 1 goto :none
bun "%BUNDLE%" %*
exit /b %ERRORLEVEL%

:none
>&2 echo %ORCH_ENTRY%: cannot run here: there is no binary for this host (Windows %ARCH%: looked for %HERE%bin\orch-windows-x64.exe)
>&2 echo and no JavaScript runtime (deno, node or bun) to run %HERE%orch.mjs (or the bundle is missing: copy the whole skill folder; from the orch sources, run npm run package and use dist\skills).
>&2 echo Binaries are built for: linux-x64, linux-arm64 (glibc), darwin-x64, darwin-arm64, windows-x64.
>&2 echo To run anywhere else, install one of: Deno 2 or later (https://deno.com),
>&2 echo Node.js 20 or later (https://nodejs.org), or Bun (https://bun.sh), and run this again.
exit /b 127
