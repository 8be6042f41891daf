/* json - writing JSON text (RFC 8259): strings escaped so that any input
 * octets give valid JSON in valid UTF-8 */
#ifndef WEIR_JSON_H
#define WEIR_JSON_H

#include <stdbool.h>

#include "lib/strbuf.h"

/* json_string - append s as a JSON string ("..." with \" \\ \n ... and
 * \u00XX for other control characters); octets that are not valid UTF-8
 * become U+FFFD. NULL is written as null. */
void json_string(struct strbuf *b, const char *s);
/* json_key - append ,"key": (no comma before the first member: b ends
 * with '{') */
void json_key(struct strbuf *b, const char *key);
/* json_member_* - a member of an object being written */
void json_member_str(struct strbuf *b, const char *key, const char *value);
void json_member_int(struct strbuf *b, const char *key, long long value);
void json_member_bool(struct strbuf *b, const char *key, bool value);

#endif
