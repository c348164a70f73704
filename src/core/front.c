/* front.c: the tables malloc's and free's fast paths read, one lookup each
 * for pools and medium regions alike (types.h, "the descriptor the fast
 * paths read"). */
#include "core/internal.h"

/* The front class of every size 1 .. MEDIUM_MAX, by 16-byte unit i (sizes
 * up to 16 (i + 1)): the pool class i below 32, else 32 + the medium class
 * of m = 16 i + 15, whose top bit is 4 + log2(i) (types.h draws the
 * classes). */
#define LOG2_(i) ((i) >= 4096 ? 12 : (i) >= 2048 ? 11 : (i) >= 1024 ? 10 : (i) >= 512 ? 9 : (i) >= 256 ? 8 : \
                  (i) >= 128 ? 7 : (i) >= 64 ? 6 : 5)
/* (i & 31 and a unit of at least 32 keep the arms not taken in range too:
 * clang checks them against uint8_t) */
#define MCLASS_(i) PMI_MEDIUM_CLASS_OF(16u * (i) + 15u, 4u + LOG2_(i))
#define FCLASS_(i) ((i) < PMI_NCLASSES ? (i) & (PMI_NCLASSES - 1) : PMI_NCLASSES + MCLASS_((i) < PMI_NCLASSES ? PMI_NCLASSES : (i)))
#define F1_(i) FCLASS_(i),
#define F4_(i) F1_(i) F1_(i + 1) F1_(i + 2) F1_(i + 3)
#define F16_(i) F4_(i) F4_(i + 4) F4_(i + 8) F4_(i + 12)
#define F64_(i) F16_(i) F16_(i + 16) F16_(i + 32) F16_(i + 48)
#define F256_(i) F64_(i) F64_(i + 64) F64_(i + 128) F64_(i + 192)
#define F1K_(i) F256_(i) F256_(i + 256) F256_(i + 512) F256_(i + 768)


const pmi_front_tables pmi_front = {
  .kinds = { PMI_FRONT_KIND_MASKS, PMI_FRONT_REGION_OR },
  .classes = {
    .link_limit = { [0 ... PMI_NCLASSES - 1] = PMI_POOL_SIZE,
                    [PMI_NCLASSES ... PMI_FRONT_NCLASSES - 1] = PMI_MEDIUM_SIZE },
    .word_mask = { [0 ... PMI_NCLASSES - 1] = (PMI_LIVE_WORDS - 1) * 8,
                   [PMI_NCLASSES ... PMI_FRONT_NCLASSES - 1] = (PMI_MEDIUM_LIVE_WORDS - 1) * 8 },
    .fclass = { F1K_(0) F1K_(1024) F1K_(2048) F1K_(3072) F1K_(4096) F1K_(5120) F1K_(6144) F1K_(7168) },
  },
};
_Static_assert(PMI_FRONT_UNITS == 8192, "fclass spells out 8192 units");
_Static_assert(FCLASS_(PMI_FRONT_UNITS - 1) == PMI_FRONT_NCLASSES - 1, "the last unit is the last class");
_Static_assert(FCLASS_(PMI_NCLASSES) == PMI_NCLASSES && FCLASS_(32) == PMI_NCLASSES && FCLASS_(33) == PMI_NCLASSES + 1,
               "513 .. 528 bytes are medium class 0, 529 the next");

#undef LOG2_
#undef MCLASS_
#undef FCLASS_
#undef F1_
#undef F4_
#undef F16_
#undef F64_
#undef F256_
#undef F1K_
