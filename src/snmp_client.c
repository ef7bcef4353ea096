/* SNMP reads for the interface names (see snmp_client.h): one session per agent poll, three GETBULK walks
 * of IF-MIB columns, rows joined by ifindex (the last sub-identifier).
 *
 * Thread: the poller thread only. */
#include "fx/snmp_client.h"

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_REPETITIONS 32

static const oid IF_NAME[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1};
static const oid IF_ALIAS[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18};
static const oid IF_HIGH_SPEED[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15};
#define COLUMN_LEN 11

enum column { COLUMN_NAME, COLUMN_ALIAS, COLUMN_SPEED };

static const struct {
	const char *name;
	const oid *protocol;
	size_t len;
} auth_protocols[] =
    {
	{"MD5", usmHMACMD5AuthProtocol, OID_LENGTH(usmHMACMD5AuthProtocol)},
	{"SHA", usmHMACSHA1AuthProtocol, OID_LENGTH(usmHMACSHA1AuthProtocol)},
	{"SHA-224", usmHMAC128SHA224AuthProtocol, OID_LENGTH(usmHMAC128SHA224AuthProtocol)},
	{"SHA-256", usmHMAC192SHA256AuthProtocol, OID_LENGTH(usmHMAC192SHA256AuthProtocol)},
	{"SHA-384", usmHMAC256SHA384AuthProtocol, OID_LENGTH(usmHMAC256SHA384AuthProtocol)},
	{"SHA-512", usmHMAC384SHA512AuthProtocol, OID_LENGTH(usmHMAC384SHA512AuthProtocol)},
},
  priv_protocols[] = {
      {"DES", usmDESPrivProtocol, OID_LENGTH(usmDESPrivProtocol)},
      {"AES", usmAESPrivProtocol, OID_LENGTH(usmAESPrivProtocol)},
      {"AES-192", usmAES192PrivProtocol, OID_LENGTH(usmAES192PrivProtocol)},
      {"AES-256", usmAES256PrivProtocol, OID_LENGTH(usmAES256PrivProtocol)},
};

static int find_protocol(const char *name, bool priv)
{
	size_t n = priv ? sizeof(priv_protocols) / sizeof(priv_protocols[0])
			: sizeof(auth_protocols) / sizeof(auth_protocols[0]);
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(name, priv ? priv_protocols[i].name : auth_protocols[i].name))
			return (int)i;
	return -1;
}

int fx_snmp_check_protocols(const char *auth_protocol, const char *priv_protocol, char *why, size_t size)
{
	if (find_protocol(auth_protocol, false) < 0) {
		snprintf(why, size,
			 "unknown authentication protocol \"%s\" (MD5, SHA, SHA-224, SHA-256, SHA-384, "
			 "SHA-512)",
			 auth_protocol);
		return -1;
	}
	if (find_protocol(priv_protocol, true) < 0) {
		snprintf(why, size, "unknown privacy protocol \"%s\" (DES, AES, AES-192, AES-256)",
			 priv_protocol);
		return -1;
	}
	return 0;
}

/* USM settings of a v3 session; keys derived from the passphrases (localised by net-snmp later). */
static int set_usm(netsnmp_session *session, const struct fx_snmp_auth *auth, char *why, size_t size)
{
	int a = find_protocol(auth->auth_protocol, false), p = find_protocol(auth->priv_protocol, true);
	session->securityName = (char *)auth->user;
	session->securityNameLen = strlen(auth->user);
	session->securityLevel = !auth->auth_passphrase	 ? SNMP_SEC_LEVEL_NOAUTH
				 : auth->priv_passphrase ? SNMP_SEC_LEVEL_AUTHPRIV
							 : SNMP_SEC_LEVEL_AUTHNOPRIV;
	if (!auth->auth_passphrase)
		return 0;
	session->securityAuthProto = (oid *)auth_protocols[a].protocol;
	session->securityAuthProtoLen = auth_protocols[a].len;
	session->securityAuthKeyLen = USM_AUTH_KU_LEN;
	if (generate_Ku(session->securityAuthProto, (u_int)session->securityAuthProtoLen,
			(const u_char *)auth->auth_passphrase, strlen(auth->auth_passphrase),
			session->securityAuthKey, &session->securityAuthKeyLen) != SNMPERR_SUCCESS) {
		snprintf(why, size,
			 "cannot derive the authentication key (passphrase of at least 8 characters?)");
		return -1;
	}
	if (!auth->priv_passphrase)
		return 0;
	session->securityPrivProto = (oid *)priv_protocols[p].protocol;
	session->securityPrivProtoLen = priv_protocols[p].len;
	session->securityPrivKeyLen = USM_PRIV_KU_LEN;
	if (generate_Ku(session->securityAuthProto, (u_int)session->securityAuthProtoLen,
			(const u_char *)auth->priv_passphrase, strlen(auth->priv_passphrase),
			session->securityPrivKey, &session->securityPrivKeyLen) != SNMPERR_SUCCESS) {
		snprintf(why, size, "cannot derive the privacy key (passphrase of at least 8 characters?)");
		return -1;
	}
	return 0;
}

static void *open_session(const struct fx_snmp_auth *auth, const char *agent, char *why, size_t size)
{
	netsnmp_session session;
	snmp_sess_init(&session);
	session.peername = (char *)agent;
	session.timeout = (long)auth->timeout_ms * 1000;
	session.retries = auth->retries;
	if (auth->version == 3) {
		session.version = SNMP_VERSION_3;
		if (set_usm(&session, auth, why, size))
			return NULL;
	} else {
		session.version = SNMP_VERSION_2c;
		session.community = (u_char *)auth->community;
		session.community_len = strlen(auth->community);
	}
	void *handle = snmp_sess_open(&session);
	if (!handle)
		snprintf(why, size, "cannot open an SNMP session to %s: %s", agent,
			 snmp_api_errstring(snmp_errno));
	return handle;
}

/* The row of ifindex. Rows are created by the ifName walk, which returns them in OID order, that is by
 * increasing ifindex: bisection. */
static struct fx_snmp_interface *row_of(struct fx_snmp_interfaces *out, uint32_t ifindex)
{
	size_t low = 0, high = out->n;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		if (out->rows[mid].ifindex == ifindex)
			return &out->rows[mid];
		if (out->rows[mid].ifindex < ifindex)
			low = mid + 1;
		else
			high = mid;
	}
	return NULL;
}

/* Octet string -> NUL-terminated text; bytes outside printable ASCII and UTF-8 become '?'. */
static char *text_of(const netsnmp_variable_list *var)
{
	size_t len = var->type == ASN_OCTET_STR ? var->val_len : 0;
	char *text = malloc(len + 1);
	if (!text)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = var->val.string[i];
		text[i] = c >= 0x20 && c != 0x7F && c < 0x80 ? (char)c : '?';
	}
	text[len] = '\0';
	return text;
}

/* Stores one variable of a column. Returns 0, or -1 when out of memory. */
static int store_value(struct fx_snmp_interfaces *out, enum column column, uint32_t ifindex,
		       const netsnmp_variable_list *var, size_t max_rows)
{
	struct fx_snmp_interface *row = row_of(out, ifindex);
	if (!row) {
		/* A row without a name, past the bound, or out of order (an agent breaking OID order): left
		 * out. */
		if (column != COLUMN_NAME || out->n == max_rows ||
		    (out->n && out->rows[out->n - 1].ifindex > ifindex))
			return 0;
		row = &out->rows[out->n++];
		*row = (struct fx_snmp_interface){.ifindex = ifindex};
	}
	if (column == COLUMN_SPEED) {
		if (var->type == ASN_GAUGE || var->type == ASN_UNSIGNED || var->type == ASN_INTEGER) {
			row->speed_bps = (uint64_t)(*var->val.integer & 0xFFFFFFFFul) * 1000000u;
			row->has_speed = true;
		}
		return 0;
	}
	char *text = text_of(var);
	if (!text)
		return -1;
	char **field = column == COLUMN_NAME ? &row->name : &row->alias;
	free(*field);
	*field = text;
	return 0;
}

/* One GETBULK walk of a column. Returns 0, or -1 with why. */
static int walk_column(void *handle, const oid *column_oid, enum column column,
		       struct fx_snmp_interfaces *out, size_t max_rows, char *why, size_t size)
{
	oid next[MAX_OID_LEN];
	size_t next_len = COLUMN_LEN;
	memcpy(next, column_oid, COLUMN_LEN * sizeof(oid));
	for (;;) {
		netsnmp_pdu *request = snmp_pdu_create(SNMP_MSG_GETBULK), *response = NULL;
		request->non_repeaters = 0;
		request->max_repetitions = BULK_REPETITIONS;
		snmp_add_null_var(request, next, next_len);
		int status = snmp_sess_synch_response(handle, request, &response);
		if (status != STAT_SUCCESS || !response || response->errstat != SNMP_ERR_NOERROR) {
			snprintf(why, size, "%s",
				 status == STAT_TIMEOUT ? "timeout"
				 : status == STAT_SUCCESS
				     ? "error status in the response"
				     : snmp_api_errstring(snmp_sess_session(handle)->s_snmp_errno));
			snmp_free_pdu(response);
			return -1;
		}
		bool done = response->variables == NULL;
		for (netsnmp_variable_list *var = response->variables; var; var = var->next_variable) {
			if (var->type == SNMP_ENDOFMIBVIEW || var->name_length != COLUMN_LEN + 1 ||
			    netsnmp_oid_is_subtree(column_oid, COLUMN_LEN, var->name, var->name_length) !=
				0) {
				done = true;
				break;
			}
			if (store_value(out, column, (uint32_t)var->name[COLUMN_LEN], var, max_rows)) {
				snmp_free_pdu(response);
				snprintf(why, size, "out of memory");
				return -1;
			}
			memcpy(next, var->name, var->name_length * sizeof(oid));
			next_len = var->name_length;
		}
		snmp_free_pdu(response);
		if (done)
			return 0;
	}
}

int fx_snmp_walk_interfaces(const struct fx_snmp_auth *auth, const char *agent, size_t max_rows,
			    struct fx_snmp_interfaces *out, char *why, size_t size)
{
	*out = (struct fx_snmp_interfaces){0};
	out->rows = calloc(max_rows ? max_rows : 1, sizeof(*out->rows));
	void *handle = out->rows ? open_session(auth, agent, why, size) : NULL;
	if (!out->rows)
		snprintf(why, size, "out of memory");
	int rc = -1;
	if (handle && !walk_column(handle, IF_NAME, COLUMN_NAME, out, max_rows, why, size) &&
	    !walk_column(handle, IF_ALIAS, COLUMN_ALIAS, out, max_rows, why, size) &&
	    !walk_column(handle, IF_HIGH_SPEED, COLUMN_SPEED, out, max_rows, why, size))
		rc = 0;
	if (handle)
		snmp_sess_close(handle);
	/* Rows whose ifName was empty have nothing to show. */
	size_t kept = 0;
	for (size_t i = 0; i < out->n; i++) {
		struct fx_snmp_interface *row = &out->rows[i];
		if (!row->alias && !(row->alias = calloc(1, 1)))
			rc = -1;
		if (row->name && row->name[0])
			out->rows[kept++] = *row;
		else
			free(row->name), free(row->alias);
	}
	out->n = kept;
	if (rc)
		fx_snmp_interfaces_free(out);
	return rc;
}

void fx_snmp_interfaces_free(struct fx_snmp_interfaces *interfaces)
{
	for (size_t i = 0; i < interfaces->n; i++) {
		free(interfaces->rows[i].name);
		free(interfaces->rows[i].alias);
	}
	free(interfaces->rows);
	*interfaces = (struct fx_snmp_interfaces){0};
}
