/*
 * serve.h — `lsmi serve`, the HTTP daemon.
 */
#ifndef LSMI_SERVE_H
#define LSMI_SERVE_H

/* argv[0] is "serve". Returns the process exit status. */
int lsmi_serve_main(int argc, char **argv);

#endif
