// The built-in synthetic multi-domain dataset: procedurally drawn street scenes labelled with
// the 19 Cityscapes train ids, in several appearance domains ("clear", "dusk", "fog", "rain",
// "painted") that share one layout distribution. A sample is a pure function of
// (seed, domain, index): the training loader can stream it straight into its own buffers
// (synth_render allocates nothing), and `maskvim data synth` writes it as shards.
// See docs/synth.md.
#pragma once
#include <stdint.h>
#include "data/image.h"

#define SYNTH_NUM_CLASSES 19
#define SYNTH_MIN_SIDE 16
#define SYNTH_MAX_SIDE 8192

// Domains, in a fixed order (the domain index is part of every sample's key).
int synth_num_domains(void);
const char *synth_domain_name(int domain);
// One line describing the domain's appearance (for --help and docs).
const char *synth_domain_summary(int domain);
// Index of a domain name, or -1 with an error message listing the known names.
int synth_domain_index(const char *name);
// Parses "clear,fog" or "all" into domain indices (at most max, no duplicates).
// Returns the count, or -1 with an error message.
int synth_parse_domains(int *domains, int max, const char *list);

// The generator seed of a named split: the same user seed gives disjoint samples for
// "train" and "val" (different keys), and the same samples wherever the split is generated
// (on disk by `data synth` or in memory by the loader).
uint64_t synth_split_seed(uint64_t seed, const char *split);

// Renders sample `index` of `domain` into caller-provided buffers: rgb (h, w, 3) interleaved
// RGB, label (h, w) train ids 0..18 or 255 (ignore: the ego vehicle's bonnet). No allocation,
// thread-safe, deterministic. Sizes from SYNTH_MIN_SIDE to SYNTH_MAX_SIDE. Returns 0 / -1.
int synth_render(uint8_t *rgb, uint8_t *label, uint64_t seed, int domain, uint64_t index, int h, int w);
// The same into allocated images: img (h, w, 3) and lab (h, w, 1) of equal size.
int synth_sample(mv_image *img, mv_image *lab, uint64_t seed, int domain, uint64_t index);

// Colourises a label map with the Cityscapes palette (MV_CLASS_PALETTE): rgb (h, w, 3) from
// label (h, w); 255 is drawn black.
void synth_colorize(uint8_t *rgb, const uint8_t *label, int h, int w);

// `maskvim data synth --out DIR --domains LIST --count N --size HxW --seed S [--split NAME]
//  [--threads T] [--preview FILE.png]`: writes one split per domain, DIR/<domain>/<split>.
int data_synth_main(int argc, char **argv);
