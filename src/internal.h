/*
 * internal.h — every layer's header, for the tests, which reach into each
 * layer (src/ itself never includes it: each file includes its own layer's
 * header, which includes the layers below; base.h has the layer table, the
 * glossary and the lock order).
 */
#ifndef GM_INTERNAL_H
#define GM_INTERNAL_H

#include "profile.h"
#include "stats.h"

#endif /* GM_INTERNAL_H */
