// The appearance domains of the synthetic dataset and their colour palettes. Domains share
// the layout distribution (synth_scene.c) and differ only here: palette, sky, texture,
// illumination, fog, rain, noise, blur and rendering style.
#include <string.h>
#include "data/synth_internal.h"

const synth_domain SYNTH_DOMAINS[] = {
    {.name = "clear", .summary = "sunny daylight: blue sky, saturated colours, light haze, sharp, little noise",
     .sky_top = {70, 130, 210}, .sky_horizon = {190, 215, 240}, .cloud = 0.25f, .tex = 1.0f,
     .side_shade = 0.62f, .fog_density = {0.002f, 0.006f}, .fog_color = {200, 215, 230},
     .exposure = {0.95f, 1.1f}, .contrast = 1.05f, .gamma = 1.0f, .saturation = 1.1f,
     .tint = {1, 1, 1}, .noise = 2},
    {.name = "dusk", .summary = "low sun after sunset: orange-to-indigo sky, dark warm image, lit windows, vehicle lights, strong sensor noise",
     .sky_top = {35, 40, 95}, .sky_horizon = {245, 140, 80}, .cloud = 0.2f, .tex = 0.9f,
     .side_shade = 0.75f, .fog_density = {0.003f, 0.01f}, .fog_color = {150, 100, 95},
     .exposure = {0.42f, 0.62f}, .contrast = 0.95f, .gamma = 1.15f, .saturation = 0.9f,
     .tint = {1.12f, 0.92f, 0.84f}, .noise = 7, .lit_windows = 0.35f, .lights = 1},
    {.name = "fog", .summary = "dense fog: grey sky, exponential depth fog, washed-out colours, soft blur",
     .sky_top = {200, 202, 205}, .sky_horizon = {206, 207, 210}, .cloud = 0.05f, .tex = 0.7f,
     .side_shade = 0.85f, .fog_density = {0.025f, 0.06f}, .fog_color = {205, 207, 210},
     .exposure = {0.95f, 1.05f}, .contrast = 0.85f, .gamma = 1.0f, .saturation = 0.6f,
     .tint = {1, 1, 1.02f}, .noise = 3, .blur = 1, .lit_windows = 0.03f},
    {.name = "rain", .summary = "overcast rain: dark bluish grey, wet reflective road, rain streaks, light haze and blur",
     .sky_top = {110, 115, 125}, .sky_horizon = {165, 170, 178}, .cloud = 0.3f, .tex = 0.8f,
     .side_shade = 0.8f, .fog_density = {0.008f, 0.02f}, .fog_color = {150, 155, 165},
     .exposure = {0.7f, 0.85f}, .contrast = 0.9f, .gamma = 1.0f, .saturation = 0.75f,
     .tint = {0.95f, 1.0f, 1.08f}, .noise = 4, .blur = 1, .lit_windows = 0.1f, .lights = 1,
     .rain = 12, .wet = 0.6f},
    {.name = "painted", .summary = "cartoon poster: unnatural pastel palette, flat shading, posterised, ink outlines, paper grain",
     .painted = 1, .sky_top = {255, 235, 180}, .sky_horizon = {255, 205, 200}, .cloud = 0, .tex = 0.15f,
     .side_shade = 0.8f, .exposure = {1, 1}, .contrast = 1, .gamma = 1, .saturation = 1.2f,
     .tint = {1, 1, 1}, .noise = 3, .posterize = 5, .outlines = 1},
};
const int SYNTH_NUM_DOMAINS = sizeof SYNTH_DOMAINS / sizeof SYNTH_DOMAINS[0];

typedef struct { int n; uint8_t c[10][3]; } swatches;

// Realistic colours: several variants per class (paint, facades, clothes).
static const swatches REAL[SYNTH_NUM_CLASSES] = {
    [C_ROAD] = {4, {{88, 88, 92}, {100, 98, 96}, {80, 82, 88}, {110, 106, 100}}},
    [C_SIDEWALK] = {4, {{150, 146, 140}, {170, 166, 160}, {150, 122, 110}, {135, 135, 135}}},
    [C_BUILDING] = {9, {{170, 160, 145}, {190, 180, 160}, {140, 125, 115}, {205, 195, 175}, {150, 90, 70},
                        {165, 170, 175}, {120, 115, 110}, {215, 205, 185}, {180, 140, 110}}},
    [C_WALL] = {3, {{160, 150, 135}, {120, 115, 110}, {175, 165, 150}}},
    [C_FENCE] = {3, {{120, 110, 95}, {90, 95, 100}, {160, 160, 160}}},
    [C_POLE] = {3, {{100, 100, 105}, {70, 75, 70}, {150, 150, 150}}},
    [C_LIGHT] = {3, {{45, 45, 45}, {60, 65, 55}, {190, 160, 40}}},
    [C_SIGN] = {5, {{200, 30, 35}, {30, 70, 170}, {235, 235, 235}, {240, 200, 30}, {30, 130, 60}}},
    [C_VEGETATION] = {4, {{60, 100, 40}, {80, 120, 45}, {50, 85, 35}, {95, 125, 55}}},
    [C_TERRAIN] = {3, {{125, 135, 75}, {140, 125, 90}, {110, 140, 70}}},
    [C_SKY] = {1, {{190, 215, 240}}},
    [C_PERSON] = {9, {{40, 40, 45}, {200, 200, 200}, {150, 30, 30}, {30, 50, 120}, {110, 90, 60},
                      {60, 110, 60}, {220, 180, 150}, {90, 90, 90}, {200, 170, 40}}},
    [C_RIDER] = {6, {{40, 40, 45}, {200, 60, 30}, {30, 50, 120}, {230, 230, 60}, {90, 90, 90}, {220, 220, 220}}},
    [C_CAR] = {10, {{200, 200, 205}, {30, 30, 35}, {110, 110, 115}, {160, 20, 25}, {20, 40, 110},
                    {210, 210, 200}, {60, 70, 60}, {180, 150, 110}, {90, 20, 30}, {150, 160, 175}}},
    [C_TRUCK] = {5, {{220, 220, 220}, {200, 60, 40}, {60, 80, 140}, {240, 240, 230}, {100, 110, 100}}},
    [C_BUS] = {5, {{210, 50, 40}, {240, 200, 40}, {230, 230, 230}, {40, 110, 180}, {60, 140, 70}}},
    [C_TRAIN] = {3, {{210, 210, 215}, {200, 40, 40}, {240, 210, 60}}},
    [C_MOTORCYCLE] = {4, {{40, 40, 45}, {180, 30, 30}, {30, 30, 130}, {200, 200, 200}}},
    [C_BICYCLE] = {4, {{30, 30, 30}, {160, 30, 30}, {40, 90, 160}, {200, 200, 200}}},
};

// The painted domain's palette: pastel and deliberately unnatural (pink facades, lavender
// roads, teal trees), so colour alone does not transfer between domains.
static const swatches PAINTED[SYNTH_NUM_CLASSES] = {
    [C_ROAD] = {2, {{150, 120, 170}, {120, 140, 180}}},
    [C_SIDEWALK] = {2, {{240, 200, 150}, {230, 230, 170}}},
    [C_BUILDING] = {6, {{250, 170, 190}, {170, 230, 200}, {200, 180, 250}, {250, 220, 140}, {140, 200, 250}, {250, 150, 120}}},
    [C_WALL] = {2, {{220, 120, 120}, {130, 180, 130}}},
    [C_FENCE] = {2, {{250, 250, 250}, {90, 60, 140}}},
    [C_POLE] = {2, {{40, 40, 90}, {250, 80, 80}}},
    [C_LIGHT] = {2, {{250, 250, 120}, {90, 250, 200}}},
    [C_SIGN] = {3, {{20, 200, 200}, {250, 120, 0}, {160, 0, 200}}},
    [C_VEGETATION] = {3, {{0, 170, 170}, {60, 200, 120}, {200, 220, 60}}},
    [C_TERRAIN] = {2, {{240, 230, 110}, {200, 160, 90}}},
    [C_SKY] = {1, {{255, 220, 190}}},
    [C_PERSON] = {4, {{250, 60, 150}, {60, 60, 250}, {250, 180, 0}, {20, 20, 20}}},
    [C_RIDER] = {2, {{250, 250, 0}, {0, 220, 100}}},
    [C_CAR] = {6, {{250, 50, 50}, {50, 200, 250}, {250, 150, 0}, {140, 250, 80}, {250, 250, 250}, {180, 80, 250}}},
    [C_TRUCK] = {2, {{0, 150, 150}, {250, 100, 180}}},
    [C_BUS] = {2, {{250, 220, 0}, {0, 120, 250}}},
    [C_TRAIN] = {1, {{250, 120, 200}}},
    [C_MOTORCYCLE] = {1, {{250, 0, 100}}},
    [C_BICYCLE] = {2, {{0, 250, 250}, {250, 250, 0}}},
};

void domain_color(float rgb[3], const synth_domain *d, int cls, uint32_t var) {
    if (cls < 0 || cls >= SYNTH_NUM_CLASSES) {   // the ego bonnet
        for (int c = 0; c < 3; c++) rgb[c] = d->painted ? 60.0f : 25.0f;
        return;
    }
    const swatches *s = d->painted ? &PAINTED[cls] : &REAL[cls];
    const uint8_t *c = s->c[var % (uint32_t)s->n];
    // +-8% brightness and a little per-channel drift, from the higher bits of var
    float bright = 0.92f + 0.16f * (float)((var >> 8) & 255) / 255.0f;
    for (int k = 0; k < 3; k++) {
        float drift = 0.96f + 0.08f * (float)((var >> (16 + 5 * k)) & 31) / 31.0f;
        float v = c[k] * bright * drift;
        rgb[k] = v > 255 ? 255 : v;
    }
}
