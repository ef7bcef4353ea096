/* The web configuration file (--web.config.file): the exporter-toolkit format that node_exporter and the
 * other Prometheus exporters read, in YAML. One validator for this input: fx_web_config_load reads the
 * file, checks every key and value, loads the certificate, key and client CA into GnuTLS credentials and
 * checks the bcrypt hashes, and returns an immutable, reference-counted configuration, or NULL with the
 * reason (naming the file, the key and the line).
 *
 * Thread: any. A loaded configuration never changes, except its cache of successful logins (under its
 * own lock); the HTTP server swaps configurations by reference (fx_web_config_ref/_unref). */
#ifndef FX_WEB_CONFIG_H
#define FX_WEB_CONFIG_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* client_auth_type, as Go's crypto/tls names them. */
enum fx_client_auth {
	FX_CLIENT_AUTH_NONE,		   /* NoClientCert */
	FX_CLIENT_AUTH_REQUEST,		   /* RequestClientCert: asked for, not verified */
	FX_CLIENT_AUTH_REQUIRE_ANY,	   /* RequireAnyClientCert: required, not verified */
	FX_CLIENT_AUTH_VERIFY_IF_GIVEN,	   /* VerifyClientCertIfGiven */
	FX_CLIENT_AUTH_REQUIRE_AND_VERIFY, /* RequireAndVerifyClientCert */
};

struct fx_web_header {
	const char *name;
	const char *value;
};

struct fx_web_config;

/* Reads and validates path. Returns a configuration with one reference, or NULL with why set (a full
 * sentence that names path and the offending key; never a secret). */
struct fx_web_config *fx_web_config_load(const char *path, char *why, size_t why_size)
    __attribute__((warn_unused_result));
/* An empty configuration: plain HTTP, no authentication, no headers (no --web.config.file). */
struct fx_web_config *fx_web_config_empty(void) __attribute__((warn_unused_result));
struct fx_web_config *fx_web_config_ref(struct fx_web_config *config);
/* Drops a reference; the last one frees. Accepts NULL. */
void fx_web_config_unref(struct fx_web_config *config);

/* ---- TLS (only meaningful when fx_web_config_tls is true) ---- */
bool fx_web_config_tls(const struct fx_web_config *config);
enum fx_client_auth fx_web_config_client_auth(const struct fx_web_config *config);
/* Borrowed, valid while the configuration lives: the certificate, key and client CA as GnuTLS
 * credentials, and the priority (versions, cipher suites, curves). */
gnutls_certificate_credentials_t fx_web_config_credentials(const struct fx_web_config *config);
gnutls_priority_t fx_web_config_priority(const struct fx_web_config *config);
const char *fx_web_config_priority_string(const struct fx_web_config *config);
/* The PEM text of the certificate and of the key (NUL-terminated, borrowed). */
const char *fx_web_config_cert_pem(const struct fx_web_config *config);
const char *fx_web_config_key_pem(const struct fx_web_config *config);
/* Whether the peer certificate (DER) carries one of client_allowed_sans; true when the list is empty. */
bool fx_web_config_san_allowed(const struct fx_web_config *config, const gnutls_datum_t *der);
/* The served certificate's notAfter (Unix seconds), 0 without TLS. */
long long fx_web_config_cert_not_after(const struct fx_web_config *config);

/* ---- basic_auth_users ---- */
bool fx_web_config_has_users(const struct fx_web_config *config);
/* True when user exists and password matches its bcrypt hash. A failed check costs one bcrypt
 * computation at the users' cost whether the user exists or not; a success is cached. */
bool fx_web_config_authenticate(struct fx_web_config *config, const char *user, const char *password);

/* ---- http_server_config.headers ---- */
size_t fx_web_config_headers(const struct fx_web_config *config, const struct fx_web_header **headers);

/* ---- change detection: the file and every file it names ---- */
#define FX_WEB_STAMP_FILES 4
struct fx_web_stamp {
	struct {
		dev_t dev;
		ino_t ino;
		off_t size;
		long long mtime_ns;
		bool missing;
	} file[FX_WEB_STAMP_FILES];
};
/* Stats path and the files config names (config may be NULL: the path only). */
void fx_web_config_stamp(const struct fx_web_config *config, const char *path, struct fx_web_stamp *out);
bool fx_web_stamp_equal(const struct fx_web_stamp *a, const struct fx_web_stamp *b);

#endif
