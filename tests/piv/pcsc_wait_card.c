/*
 * pcsc_wait_card.c - test helper: wait (without busy looping) until a card
 * is present in a PC/SC reader, or, with -a, until no card is present.
 *
 * usage: pcsc_wait_card [-a] [-r READER_SUBSTRING] [TIMEOUT_MS]
 *
 * Uses SCardGetStatusChange, plus the "\\?PnP?\Notification" pseudo reader
 * so that readers appearing late are noticed.  Honours PCSCLITE_CSOCK_NAME
 * like every pcsc-lite client.  Prints the matching reader name on success.
 * Exit status: 0 = condition met, 1 = timeout, 2 = PC/SC error or bad usage.
 *
 * Build: cc -Wall -Wextra -Werror -o pcsc_wait_card pcsc_wait_card.c \
 *            $(pkg-config --cflags --libs libpcsclite)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#define MAX_READERS 16

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-a] [-r READER_SUBSTRING] [TIMEOUT_MS]\n",
	    prog);
	return 2;
}

int
main(int argc, char **argv)
{
	SCARDCONTEXT ctx;
	LONG rv;
	long timeout_ms = 5000, deadline;
	const char *match = NULL;
	int want_absent = 0;
	int opt;
	int result = 1;

	while ((opt = getopt(argc, argv, "ar:")) != -1) {
		switch (opt) {
		case 'a':
			want_absent = 1;
			break;
		case 'r':
			match = optarg;
			break;
		default:
			return usage(argv[0]);
		}
	}
	if (optind < argc) {
		char *end;

		errno = 0;
		timeout_ms = strtol(argv[optind], &end, 10);
		if (errno != 0 || *end != '\0' || timeout_ms < 0 ||
		    optind + 1 != argc)
			return usage(argv[0]);
	}
	deadline = now_ms() + timeout_ms;

	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "SCardEstablishContext: %s\n",
		    pcsc_stringify_error(rv));
		return 2;
	}

	for (;;) {
		char readers[4096];
		DWORD len = sizeof(readers);
		SCARD_READERSTATE st[MAX_READERS + 1];
		DWORD n = 0, total = 0, i;
		long found;
		long left = deadline - now_ms();
		const char *p;

		if (left < 0)
			left = 0;
		memset(st, 0, sizeof(st));
		rv = SCardListReaders(ctx, NULL, readers, &len);
		if (rv == SCARD_S_SUCCESS) {
			for (p = readers; *p != '\0'; p += strlen(p) + 1) {
				total++;
				if (n >= MAX_READERS ||
				    (match != NULL && strstr(p, match) == NULL))
					continue;
				st[n].szReader = p;
				st[n].dwCurrentState = SCARD_STATE_UNAWARE;
				n++;
			}
		} else if (rv != SCARD_E_NO_READERS_AVAILABLE) {
			fprintf(stderr, "SCardListReaders: %s\n",
			    pcsc_stringify_error(rv));
			result = 2;
			break;
		}

		/* First pass: learn the current state without waiting. */
		if (n > 0) {
			rv = SCardGetStatusChange(ctx, 0, st, n);
			if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
				fprintf(stderr, "SCardGetStatusChange: %s\n",
				    pcsc_stringify_error(rv));
				result = 2;
				break;
			}
		}
		found = -1;
		for (i = 0; i < n; i++) {
			DWORD s = st[i].dwEventState;

			if ((s & SCARD_STATE_PRESENT) && !(s & SCARD_STATE_MUTE)) {
				found = (long)i;
				break;
			}
		}
		if (!want_absent && found >= 0) {
			printf("%s\n", st[found].szReader);
			result = 0;
			break;
		}
		if (want_absent && found < 0) {
			printf("no card\n");
			result = 0;
			break;
		}
		if (left == 0)
			break;

		/* Wait for a change in any reader, or a new reader. */
		for (i = 0; i < n; i++)
			st[i].dwCurrentState = st[i].dwEventState &
			    ~SCARD_STATE_CHANGED;
		st[n].szReader = "\\\\?PnP?\\Notification";
		/* high word: number of readers known to us (pcsc-lite) */
		st[n].dwCurrentState = total << 16;
		rv = SCardGetStatusChange(ctx, (DWORD)left, st, n + 1);
		if (rv == SCARD_E_TIMEOUT)
			break;
		if (rv != SCARD_S_SUCCESS) {
			fprintf(stderr, "SCardGetStatusChange: %s\n",
			    pcsc_stringify_error(rv));
			result = 2;
			break;
		}
	}

	if (result == 1)
		fprintf(stderr, "timeout: %s after %ld ms\n",
		    want_absent ? "card still present" : "no card", timeout_ms);
	SCardReleaseContext(ctx);
	return result;
}
