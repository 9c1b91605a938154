/*
 * serve.h — `lsmi serve`, the HTTP daemon.
 */
#ifndef LSMI_SERVE_H
#define LSMI_SERVE_H

/*
 * argv[0] is "serve". Returns the process exit status, as main() does: 0
 * after a clean shutdown (or --help), 1 when the daemon could not start, 2
 * when the configuration is wrong. (The one function of server/ outside
 * the 0-or-negative-status convention: its caller is main.)
 */
int lsmi_serve_main(int argc, char **argv);

#endif
