/*
 * probe.h — `lsmi probe`: a health probe that needs nothing but the binary.
 *
 * Container images and orchestrators ask the daemon whether it is alive
 * (Docker HEALTHCHECK, compose healthcheck). The runtime image carries no
 * curl, so the binary itself does one plain-HTTP GET over a socket and turns
 * the status into an exit code.
 */
#ifndef LSMI_PROBE_H
#define LSMI_PROBE_H

/*
 * Runs `lsmi probe [--timeout SECONDS] [URL | /PATH]`. argv[0] is the
 * subcommand's name ("probe"); argv is borrowed. Without a URL the probe asks
 * /healthz (or the given /PATH) on the address of LSMI_LISTEN (default
 * 127.0.0.1:8080), with a wildcard host replaced by loopback.
 *
 * Returns the process exit code: 0 when the server answered 2xx, 1 for any
 * other status, a connection error or a timeout, 2 for a usage error.
 */
int lsmi_probe_main(int argc, char **argv);

#endif /* LSMI_PROBE_H */
