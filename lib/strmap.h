/* strmap - a hash map from strings to pointers
 *
 * Keys are copied; values are the caller's (strmap_free calls free_value
 * on each when given). Not thread safe for writers; any number of readers
 * may share a map nobody writes to any more (weir builds maps at
 * configuration load and only reads them afterwards). */
#ifndef WEIR_STRMAP_H
#define WEIR_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* strmap_put - set key to value; returns the previous value or NULL */
void *strmap_put(struct strmap *m, const char *key, void *value);
void *strmap_get(const struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* strmap_foreach - call fn for every entry, in no particular order */
void strmap_foreach(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
		    void *ctx);
void strmap_free(struct strmap *m, void (*free_value)(void *value));

#endif
