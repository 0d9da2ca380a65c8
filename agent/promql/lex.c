/* promql/lex: the PromQL lexer. See lex.h.
 *
 * The lexer reads runes (UTF-8, invalid bytes as U+FFFD) and has four
 * modes: statements (the normal one; inside braces while brace_open is set),
 * duration expressions (right after '[' and after each operator, parenthesis
 * or colon inside brackets), and the continuation of a string after an error
 * inside it. The exact rules (what a number may look like, which characters
 * end a duration, where errors are reported) follow Prometheus's lexer, so
 * that the same queries are accepted and the same messages come out. */
#include "promql/lex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "strutil.h"

enum { MODE_STATEMENTS, MODE_DURATION, MODE_STRING, MODE_RAW, MODE_DONE };

#define EOF_RUNE (-1)
#define RUNE_ERROR 0xFFFDu

void promql_lex_init(promql_lexer *l, const char *in, size_t len)
{
    memset(l, 0, sizeof *l);
    l->in = in;
    l->len = (uint32_t)len;
    l->mode = MODE_STATEMENTS;
    buf_init(&l->err, 4096);
}

void promql_lex_cleanup(promql_lexer *l)
{
    buf_cleanup(&l->err);
}

/* ---- runes -------------------------------------------------------------------- */

uint32_t promql_lex_rune(const char *s, size_t len, uint32_t *width)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[0];
    *width = 1;
    if (c < 0x80) return c;
    size_t need;
    uint32_t r;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        r = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        r = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        r = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return RUNE_ERROR;
    }
    if (len < need) return RUNE_ERROR;
    if (p[1] < lo || p[1] > hi) return RUNE_ERROR;
    r = (r << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) return RUNE_ERROR;
        r = (r << 6) | (p[i] & 0x3F);
    }
    *width = (uint32_t)need;
    return r;
}

/* The code points Go's unicode.IsPrint (and strconv.IsPrint, which Quote
 * uses) accepts: letters, marks, numbers, punctuation, symbols (Unicode
 * 15.0.0, the version of Go's tables) and the ASCII space. Generated from
 * ICU 72's character categories (also Unicode 15.0.0). */
static const uint32_t printable_ranges[][2] = {
    {0x20, 0x7E},       {0xA1, 0xAC},       {0xAE, 0x377},      {0x37A, 0x37F},
    {0x384, 0x38A},     {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x52F},
    {0x531, 0x556},     {0x559, 0x58A},     {0x58D, 0x58F},     {0x591, 0x5C7},
    {0x5D0, 0x5EA},     {0x5EF, 0x5F4},     {0x606, 0x61B},     {0x61D, 0x6DC},
    {0x6DE, 0x70D},     {0x710, 0x74A},     {0x74D, 0x7B1},     {0x7C0, 0x7FA},
    {0x7FD, 0x82D},     {0x830, 0x83E},     {0x840, 0x85B},     {0x85E, 0x85E},
    {0x860, 0x86A},     {0x870, 0x88E},     {0x898, 0x8E1},     {0x8E3, 0x983},
    {0x985, 0x98C},     {0x98F, 0x990},     {0x993, 0x9A8},     {0x9AA, 0x9B0},
    {0x9B2, 0x9B2},     {0x9B6, 0x9B9},     {0x9BC, 0x9C4},     {0x9C7, 0x9C8},
    {0x9CB, 0x9CE},     {0x9D7, 0x9D7},     {0x9DC, 0x9DD},     {0x9DF, 0x9E3},
    {0x9E6, 0x9FE},     {0xA01, 0xA03},     {0xA05, 0xA0A},     {0xA0F, 0xA10},
    {0xA13, 0xA28},     {0xA2A, 0xA30},     {0xA32, 0xA33},     {0xA35, 0xA36},
    {0xA38, 0xA39},     {0xA3C, 0xA3C},     {0xA3E, 0xA42},     {0xA47, 0xA48},
    {0xA4B, 0xA4D},     {0xA51, 0xA51},     {0xA59, 0xA5C},     {0xA5E, 0xA5E},
    {0xA66, 0xA76},     {0xA81, 0xA83},     {0xA85, 0xA8D},     {0xA8F, 0xA91},
    {0xA93, 0xAA8},     {0xAAA, 0xAB0},     {0xAB2, 0xAB3},     {0xAB5, 0xAB9},
    {0xABC, 0xAC5},     {0xAC7, 0xAC9},     {0xACB, 0xACD},     {0xAD0, 0xAD0},
    {0xAE0, 0xAE3},     {0xAE6, 0xAF1},     {0xAF9, 0xAFF},     {0xB01, 0xB03},
    {0xB05, 0xB0C},     {0xB0F, 0xB10},     {0xB13, 0xB28},     {0xB2A, 0xB30},
    {0xB32, 0xB33},     {0xB35, 0xB39},     {0xB3C, 0xB44},     {0xB47, 0xB48},
    {0xB4B, 0xB4D},     {0xB55, 0xB57},     {0xB5C, 0xB5D},     {0xB5F, 0xB63},
    {0xB66, 0xB77},     {0xB82, 0xB83},     {0xB85, 0xB8A},     {0xB8E, 0xB90},
    {0xB92, 0xB95},     {0xB99, 0xB9A},     {0xB9C, 0xB9C},     {0xB9E, 0xB9F},
    {0xBA3, 0xBA4},     {0xBA8, 0xBAA},     {0xBAE, 0xBB9},     {0xBBE, 0xBC2},
    {0xBC6, 0xBC8},     {0xBCA, 0xBCD},     {0xBD0, 0xBD0},     {0xBD7, 0xBD7},
    {0xBE6, 0xBFA},     {0xC00, 0xC0C},     {0xC0E, 0xC10},     {0xC12, 0xC28},
    {0xC2A, 0xC39},     {0xC3C, 0xC44},     {0xC46, 0xC48},     {0xC4A, 0xC4D},
    {0xC55, 0xC56},     {0xC58, 0xC5A},     {0xC5D, 0xC5D},     {0xC60, 0xC63},
    {0xC66, 0xC6F},     {0xC77, 0xC8C},     {0xC8E, 0xC90},     {0xC92, 0xCA8},
    {0xCAA, 0xCB3},     {0xCB5, 0xCB9},     {0xCBC, 0xCC4},     {0xCC6, 0xCC8},
    {0xCCA, 0xCCD},     {0xCD5, 0xCD6},     {0xCDD, 0xCDE},     {0xCE0, 0xCE3},
    {0xCE6, 0xCEF},     {0xCF1, 0xCF3},     {0xD00, 0xD0C},     {0xD0E, 0xD10},
    {0xD12, 0xD44},     {0xD46, 0xD48},     {0xD4A, 0xD4F},     {0xD54, 0xD63},
    {0xD66, 0xD7F},     {0xD81, 0xD83},     {0xD85, 0xD96},     {0xD9A, 0xDB1},
    {0xDB3, 0xDBB},     {0xDBD, 0xDBD},     {0xDC0, 0xDC6},     {0xDCA, 0xDCA},
    {0xDCF, 0xDD4},     {0xDD6, 0xDD6},     {0xDD8, 0xDDF},     {0xDE6, 0xDEF},
    {0xDF2, 0xDF4},     {0xE01, 0xE3A},     {0xE3F, 0xE5B},     {0xE81, 0xE82},
    {0xE84, 0xE84},     {0xE86, 0xE8A},     {0xE8C, 0xEA3},     {0xEA5, 0xEA5},
    {0xEA7, 0xEBD},     {0xEC0, 0xEC4},     {0xEC6, 0xEC6},     {0xEC8, 0xECE},
    {0xED0, 0xED9},     {0xEDC, 0xEDF},     {0xF00, 0xF47},     {0xF49, 0xF6C},
    {0xF71, 0xF97},     {0xF99, 0xFBC},     {0xFBE, 0xFCC},     {0xFCE, 0xFDA},
    {0x1000, 0x10C5},   {0x10C7, 0x10C7},   {0x10CD, 0x10CD},   {0x10D0, 0x1248},
    {0x124A, 0x124D},   {0x1250, 0x1256},   {0x1258, 0x1258},   {0x125A, 0x125D},
    {0x1260, 0x1288},   {0x128A, 0x128D},   {0x1290, 0x12B0},   {0x12B2, 0x12B5},
    {0x12B8, 0x12BE},   {0x12C0, 0x12C0},   {0x12C2, 0x12C5},   {0x12C8, 0x12D6},
    {0x12D8, 0x1310},   {0x1312, 0x1315},   {0x1318, 0x135A},   {0x135D, 0x137C},
    {0x1380, 0x1399},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1400, 0x167F},
    {0x1681, 0x169C},   {0x16A0, 0x16F8},   {0x1700, 0x1715},   {0x171F, 0x1736},
    {0x1740, 0x1753},   {0x1760, 0x176C},   {0x176E, 0x1770},   {0x1772, 0x1773},
    {0x1780, 0x17DD},   {0x17E0, 0x17E9},   {0x17F0, 0x17F9},   {0x1800, 0x180D},
    {0x180F, 0x1819},   {0x1820, 0x1878},   {0x1880, 0x18AA},   {0x18B0, 0x18F5},
    {0x1900, 0x191E},   {0x1920, 0x192B},   {0x1930, 0x193B},   {0x1940, 0x1940},
    {0x1944, 0x196D},   {0x1970, 0x1974},   {0x1980, 0x19AB},   {0x19B0, 0x19C9},
    {0x19D0, 0x19DA},   {0x19DE, 0x1A1B},   {0x1A1E, 0x1A5E},   {0x1A60, 0x1A7C},
    {0x1A7F, 0x1A89},   {0x1A90, 0x1A99},   {0x1AA0, 0x1AAD},   {0x1AB0, 0x1ACE},
    {0x1B00, 0x1B4C},   {0x1B50, 0x1B7E},   {0x1B80, 0x1BF3},   {0x1BFC, 0x1C37},
    {0x1C3B, 0x1C49},   {0x1C4D, 0x1C88},   {0x1C90, 0x1CBA},   {0x1CBD, 0x1CC7},
    {0x1CD0, 0x1CFA},   {0x1D00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FC4},
    {0x1FC6, 0x1FD3},   {0x1FD6, 0x1FDB},   {0x1FDD, 0x1FEF},   {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFE},   {0x2010, 0x2027},   {0x2030, 0x205E},   {0x2070, 0x2071},
    {0x2074, 0x208E},   {0x2090, 0x209C},   {0x20A0, 0x20C0},   {0x20D0, 0x20F0},
    {0x2100, 0x218B},   {0x2190, 0x2426},   {0x2440, 0x244A},   {0x2460, 0x2B73},
    {0x2B76, 0x2B95},   {0x2B97, 0x2CF3},   {0x2CF9, 0x2D25},   {0x2D27, 0x2D27},
    {0x2D2D, 0x2D2D},   {0x2D30, 0x2D67},   {0x2D6F, 0x2D70},   {0x2D7F, 0x2D96},
    {0x2DA0, 0x2DA6},   {0x2DA8, 0x2DAE},   {0x2DB0, 0x2DB6},   {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6},   {0x2DC8, 0x2DCE},   {0x2DD0, 0x2DD6},   {0x2DD8, 0x2DDE},
    {0x2DE0, 0x2E5D},   {0x2E80, 0x2E99},   {0x2E9B, 0x2EF3},   {0x2F00, 0x2FD5},
    {0x2FF0, 0x2FFB},   {0x3001, 0x303F},   {0x3041, 0x3096},   {0x3099, 0x30FF},
    {0x3105, 0x312F},   {0x3131, 0x318E},   {0x3190, 0x31E3},   {0x31F0, 0x321E},
    {0x3220, 0xA48C},   {0xA490, 0xA4C6},   {0xA4D0, 0xA62B},   {0xA640, 0xA6F7},
    {0xA700, 0xA7CA},   {0xA7D0, 0xA7D1},   {0xA7D3, 0xA7D3},   {0xA7D5, 0xA7D9},
    {0xA7F2, 0xA82C},   {0xA830, 0xA839},   {0xA840, 0xA877},   {0xA880, 0xA8C5},
    {0xA8CE, 0xA8D9},   {0xA8E0, 0xA953},   {0xA95F, 0xA97C},   {0xA980, 0xA9CD},
    {0xA9CF, 0xA9D9},   {0xA9DE, 0xA9FE},   {0xAA00, 0xAA36},   {0xAA40, 0xAA4D},
    {0xAA50, 0xAA59},   {0xAA5C, 0xAAC2},   {0xAADB, 0xAAF6},   {0xAB01, 0xAB06},
    {0xAB09, 0xAB0E},   {0xAB11, 0xAB16},   {0xAB20, 0xAB26},   {0xAB28, 0xAB2E},
    {0xAB30, 0xAB6B},   {0xAB70, 0xABED},   {0xABF0, 0xABF9},   {0xAC00, 0xD7A3},
    {0xD7B0, 0xD7C6},   {0xD7CB, 0xD7FB},   {0xF900, 0xFA6D},   {0xFA70, 0xFAD9},
    {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFB1D, 0xFB36},   {0xFB38, 0xFB3C},
    {0xFB3E, 0xFB3E},   {0xFB40, 0xFB41},   {0xFB43, 0xFB44},   {0xFB46, 0xFBC2},
    {0xFBD3, 0xFD8F},   {0xFD92, 0xFDC7},   {0xFDCF, 0xFDCF},   {0xFDF0, 0xFE19},
    {0xFE20, 0xFE52},   {0xFE54, 0xFE66},   {0xFE68, 0xFE6B},   {0xFE70, 0xFE74},
    {0xFE76, 0xFEFC},   {0xFF01, 0xFFBE},   {0xFFC2, 0xFFC7},   {0xFFCA, 0xFFCF},
    {0xFFD2, 0xFFD7},   {0xFFDA, 0xFFDC},   {0xFFE0, 0xFFE6},   {0xFFE8, 0xFFEE},
    {0xFFFC, 0xFFFD},   {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
    {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA},
    {0x10100, 0x10102}, {0x10107, 0x10133}, {0x10137, 0x1018E}, {0x10190, 0x1019C},
    {0x101A0, 0x101A0}, {0x101D0, 0x101FD}, {0x10280, 0x1029C}, {0x102A0, 0x102D0},
    {0x102E0, 0x102FB}, {0x10300, 0x10323}, {0x1032D, 0x1034A}, {0x10350, 0x1037A},
    {0x10380, 0x1039D}, {0x1039F, 0x103C3}, {0x103C8, 0x103D5}, {0x10400, 0x1049D},
    {0x104A0, 0x104A9}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527},
    {0x10530, 0x10563}, {0x1056F, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592},
    {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767},
    {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805},
    {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10857, 0x1089E}, {0x108A7, 0x108AF}, {0x108E0, 0x108F2},
    {0x108F4, 0x108F5}, {0x108FB, 0x1091B}, {0x1091F, 0x10939}, {0x1093F, 0x1093F},
    {0x10980, 0x109B7}, {0x109BC, 0x109CF}, {0x109D2, 0x10A03}, {0x10A05, 0x10A06},
    {0x10A0C, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A35}, {0x10A38, 0x10A3A},
    {0x10A3F, 0x10A48}, {0x10A50, 0x10A58}, {0x10A60, 0x10A9F}, {0x10AC0, 0x10AE6},
    {0x10AEB, 0x10AF6}, {0x10B00, 0x10B35}, {0x10B39, 0x10B55}, {0x10B58, 0x10B72},
    {0x10B78, 0x10B91}, {0x10B99, 0x10B9C}, {0x10BA9, 0x10BAF}, {0x10C00, 0x10C48},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10CFA, 0x10D27}, {0x10D30, 0x10D39},
    {0x10E60, 0x10E7E}, {0x10E80, 0x10EA9}, {0x10EAB, 0x10EAD}, {0x10EB0, 0x10EB1},
    {0x10EFD, 0x10F27}, {0x10F30, 0x10F59}, {0x10F70, 0x10F89}, {0x10FB0, 0x10FCB},
    {0x10FE0, 0x10FF6}, {0x11000, 0x1104D}, {0x11052, 0x11075}, {0x1107F, 0x110BC},
    {0x110BE, 0x110C2}, {0x110D0, 0x110E8}, {0x110F0, 0x110F9}, {0x11100, 0x11134},
    {0x11136, 0x11147}, {0x11150, 0x11176}, {0x11180, 0x111DF}, {0x111E1, 0x111F4},
    {0x11200, 0x11211}, {0x11213, 0x11241}, {0x11280, 0x11286}, {0x11288, 0x11288},
    {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A9}, {0x112B0, 0x112EA},
    {0x112F0, 0x112F9}, {0x11300, 0x11303}, {0x11305, 0x1130C}, {0x1130F, 0x11310},
    {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339},
    {0x1133B, 0x11344}, {0x11347, 0x11348}, {0x1134B, 0x1134D}, {0x11350, 0x11350},
    {0x11357, 0x11357}, {0x1135D, 0x11363}, {0x11366, 0x1136C}, {0x11370, 0x11374},
    {0x11400, 0x1145B}, {0x1145D, 0x11461}, {0x11480, 0x114C7}, {0x114D0, 0x114D9},
    {0x11580, 0x115B5}, {0x115B8, 0x115DD}, {0x11600, 0x11644}, {0x11650, 0x11659},
    {0x11660, 0x1166C}, {0x11680, 0x116B9}, {0x116C0, 0x116C9}, {0x11700, 0x1171A},
    {0x1171D, 0x1172B}, {0x11730, 0x11746}, {0x11800, 0x1183B}, {0x118A0, 0x118F2},
    {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916},
    {0x11918, 0x11935}, {0x11937, 0x11938}, {0x1193B, 0x11946}, {0x11950, 0x11959},
    {0x119A0, 0x119A7}, {0x119AA, 0x119D7}, {0x119DA, 0x119E4}, {0x11A00, 0x11A47},
    {0x11A50, 0x11AA2}, {0x11AB0, 0x11AF8}, {0x11B00, 0x11B09}, {0x11C00, 0x11C08},
    {0x11C0A, 0x11C36}, {0x11C38, 0x11C45}, {0x11C50, 0x11C6C}, {0x11C70, 0x11C8F},
    {0x11C92, 0x11CA7}, {0x11CA9, 0x11CB6}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09},
    {0x11D0B, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D47},
    {0x11D50, 0x11D59}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D8E},
    {0x11D90, 0x11D91}, {0x11D93, 0x11D98}, {0x11DA0, 0x11DA9}, {0x11EE0, 0x11EF8},
    {0x11F00, 0x11F10}, {0x11F12, 0x11F3A}, {0x11F3E, 0x11F59}, {0x11FB0, 0x11FB0},
    {0x11FC0, 0x11FF1}, {0x11FFF, 0x12399}, {0x12400, 0x1246E}, {0x12470, 0x12474},
    {0x12480, 0x12543}, {0x12F90, 0x12FF2}, {0x13000, 0x1342F}, {0x13440, 0x13455},
    {0x14400, 0x14646}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A60, 0x16A69},
    {0x16A6E, 0x16ABE}, {0x16AC0, 0x16AC9}, {0x16AD0, 0x16AED}, {0x16AF0, 0x16AF5},
    {0x16B00, 0x16B45}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61}, {0x16B63, 0x16B77},
    {0x16B7D, 0x16B8F}, {0x16E40, 0x16E9A}, {0x16F00, 0x16F4A}, {0x16F4F, 0x16F87},
    {0x16F8F, 0x16F9F}, {0x16FE0, 0x16FE4}, {0x16FF0, 0x16FF1}, {0x17000, 0x187F7},
    {0x18800, 0x18CD5}, {0x18D00, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152},
    {0x1B155, 0x1B155}, {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A},
    {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1BC9C, 0x1BC9F},
    {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1CF50, 0x1CFC3}, {0x1D000, 0x1D0F5},
    {0x1D100, 0x1D126}, {0x1D129, 0x1D172}, {0x1D17B, 0x1D1EA}, {0x1D200, 0x1D245},
    {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3}, {0x1D300, 0x1D356}, {0x1D360, 0x1D378},
    {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2},
    {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB},
    {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514},
    {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544},
    {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D7CB},
    {0x1D7CE, 0x1DA8B}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021},
    {0x1E023, 0x1E024}, {0x1E026, 0x1E02A}, {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F},
    {0x1E100, 0x1E12C}, {0x1E130, 0x1E13D}, {0x1E140, 0x1E149}, {0x1E14E, 0x1E14F},
    {0x1E290, 0x1E2AE}, {0x1E2C0, 0x1E2F9}, {0x1E2FF, 0x1E2FF}, {0x1E4D0, 0x1E4F9},
    {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE},
    {0x1E800, 0x1E8C4}, {0x1E8C7, 0x1E8D6}, {0x1E900, 0x1E94B}, {0x1E950, 0x1E959},
    {0x1E95E, 0x1E95F}, {0x1EC71, 0x1ECB4}, {0x1ED01, 0x1ED3D}, {0x1EE00, 0x1EE03},
    {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27},
    {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B},
    {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57},
    {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F},
    {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89},
    {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB},
    {0x1EEF0, 0x1EEF1}, {0x1F000, 0x1F02B}, {0x1F030, 0x1F093}, {0x1F0A0, 0x1F0AE},
    {0x1F0B1, 0x1F0BF}, {0x1F0C1, 0x1F0CF}, {0x1F0D1, 0x1F0F5}, {0x1F100, 0x1F1AD},
    {0x1F1E6, 0x1F202}, {0x1F210, 0x1F23B}, {0x1F240, 0x1F248}, {0x1F250, 0x1F251},
    {0x1F260, 0x1F265}, {0x1F300, 0x1F6D7}, {0x1F6DC, 0x1F6EC}, {0x1F6F0, 0x1F6FC},
    {0x1F700, 0x1F776}, {0x1F77B, 0x1F7D9}, {0x1F7E0, 0x1F7EB}, {0x1F7F0, 0x1F7F0},
    {0x1F800, 0x1F80B}, {0x1F810, 0x1F847}, {0x1F850, 0x1F859}, {0x1F860, 0x1F887},
    {0x1F890, 0x1F8AD}, {0x1F8B0, 0x1F8B1}, {0x1F900, 0x1FA53}, {0x1FA60, 0x1FA6D},
    {0x1FA70, 0x1FA7C}, {0x1FA80, 0x1FA88}, {0x1FA90, 0x1FABD}, {0x1FABF, 0x1FAC5},
    {0x1FACE, 0x1FADB}, {0x1FAE0, 0x1FAE8}, {0x1FAF0, 0x1FAF8}, {0x1FB00, 0x1FB92},
    {0x1FB94, 0x1FBCA}, {0x1FBF0, 0x1FBF9}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B739},
    {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0}, {0x2F800, 0x2FA1D},
    {0x30000, 0x3134A}, {0x31350, 0x323AF}, {0xE0100, 0xE01EF},
};

bool promql_lex_rune_printable(uint32_t r)
{
    size_t lo = 0, hi = sizeof printable_ranges / sizeof printable_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r < printable_ranges[mid][0])
            hi = mid;
        else if (r > printable_ranges[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static void quote_rune_body(buf *out, uint32_t r, uint32_t quote)
{
    static const char hex[] = "0123456789abcdef";
    char e[16];
    if (r == quote || r == '\\') {
        e[0] = '\\';
        e[1] = (char)r;
        buf_append(out, e, 2);
        return;
    }
    if (promql_lex_rune_printable(r)) {
        strutil_append_rune(out, r);
        return;
    }
    switch (r) {
    case '\a':
        buf_puts(out, "\\a");
        return;
    case '\b':
        buf_puts(out, "\\b");
        return;
    case '\f':
        buf_puts(out, "\\f");
        return;
    case '\n':
        buf_puts(out, "\\n");
        return;
    case '\r':
        buf_puts(out, "\\r");
        return;
    case '\t':
        buf_puts(out, "\\t");
        return;
    case '\v':
        buf_puts(out, "\\v");
        return;
    default:
        break;
    }
    if (r < ' ' || r == 0x7f) {
        e[0] = '\\';
        e[1] = 'x';
        e[2] = hex[r >> 4];
        e[3] = hex[r & 15];
        buf_append(out, e, 4);
    } else if (r < 0x10000) {
        buf_printf(out, "\\u%04x", (unsigned)r);
    } else {
        buf_printf(out, "\\U%08x", (unsigned)r);
    }
}

void promql_lex_quote_rune(buf *out, int32_t r)
{
    uint32_t u = (uint32_t)r;
    if (r < 0 || u > 0x10FFFF || (u >= 0xD800 && u < 0xE000)) u = RUNE_ERROR;
    buf_putc(out, '\'');
    quote_rune_body(out, u, '\'');
    buf_putc(out, '\'');
}

void promql_lex_quote(buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_putc(out, '"');
    size_t i = 0;
    while (i < len) {
        uint32_t w;
        uint32_t r = promql_lex_rune(s + i, len - i, &w);
        if (r == RUNE_ERROR && w == 1) {
            char e[4] = {'\\', 'x', hex[(unsigned char)s[i] >> 4], hex[(unsigned char)s[i] & 15]};
            buf_append(out, e, 4);
            i++;
            continue;
        }
        quote_rune_body(out, r, '"');
        i += w;
    }
    buf_putc(out, '"');
}

/* ---- keywords ----------------------------------------------------------------- */

static const struct {
    const char *word;
    enum promql_tok tok;
} keywords[] = {
    {"and", PROMQL_TOK_LAND},
    {"or", PROMQL_TOK_LOR},
    {"unless", PROMQL_TOK_LUNLESS},
    {"atan2", PROMQL_TOK_ATAN2},
    {"sum", PROMQL_TOK_SUM},
    {"avg", PROMQL_TOK_AVG},
    {"count", PROMQL_TOK_COUNT},
    {"min", PROMQL_TOK_MIN},
    {"max", PROMQL_TOK_MAX},
    {"group", PROMQL_TOK_GROUP},
    {"stddev", PROMQL_TOK_STDDEV},
    {"stdvar", PROMQL_TOK_STDVAR},
    {"topk", PROMQL_TOK_TOPK},
    {"bottomk", PROMQL_TOK_BOTTOMK},
    {"count_values", PROMQL_TOK_COUNT_VALUES},
    {"quantile", PROMQL_TOK_QUANTILE},
    {"limitk", PROMQL_TOK_LIMITK},
    {"limit_ratio", PROMQL_TOK_LIMIT_RATIO},
    {"offset", PROMQL_TOK_OFFSET},
    {"smoothed", PROMQL_TOK_SMOOTHED},
    {"anchored", PROMQL_TOK_ANCHORED},
    {"by", PROMQL_TOK_BY},
    {"without", PROMQL_TOK_WITHOUT},
    {"on", PROMQL_TOK_ON},
    {"ignoring", PROMQL_TOK_IGNORING},
    {"group_left", PROMQL_TOK_GROUP_LEFT},
    {"group_right", PROMQL_TOK_GROUP_RIGHT},
    {"fill", PROMQL_TOK_FILL},
    {"fill_left", PROMQL_TOK_FILL_LEFT},
    {"fill_right", PROMQL_TOK_FILL_RIGHT},
    {"bool", PROMQL_TOK_BOOL},
    {"start", PROMQL_TOK_START},
    {"end", PROMQL_TOK_END},
    {"step", PROMQL_TOK_STEP},
    {"range", PROMQL_TOK_RANGE},
    {"max_of", PROMQL_TOK_MAX_OF},
    {"min_of", PROMQL_TOK_MIN_OF},
    {"inf", PROMQL_TOK_NUMBER},
    {"nan", PROMQL_TOK_NUMBER},
};

static bool word_eq_ci(const char *s, size_t len, const char *kw)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (kw[i] == '\0' || kw[i] != c) return false;
    }
    return kw[len] == '\0';
}

enum promql_tok promql_lex_keyword(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (word_eq_ci(s, len, keywords[i].word)) return keywords[i].tok;
    }
    return PROMQL_TOK_IDENTIFIER;
}

const char *promql_tok_text(enum promql_tok t)
{
    switch (t) {
    case PROMQL_TOK_LEFT_PAREN:
        return "(";
    case PROMQL_TOK_RIGHT_PAREN:
        return ")";
    case PROMQL_TOK_LEFT_BRACE:
        return "{";
    case PROMQL_TOK_RIGHT_BRACE:
        return "}";
    case PROMQL_TOK_LEFT_BRACKET:
        return "[";
    case PROMQL_TOK_RIGHT_BRACKET:
        return "]";
    case PROMQL_TOK_COMMA:
        return ",";
    case PROMQL_TOK_EQL:
        return "=";
    case PROMQL_TOK_COLON:
        return ":";
    case PROMQL_TOK_ADD:
        return "+";
    case PROMQL_TOK_DIV:
        return "/";
    case PROMQL_TOK_EQLC:
        return "==";
    case PROMQL_TOK_EQL_REGEX:
        return "=~";
    case PROMQL_TOK_GTE:
        return ">=";
    case PROMQL_TOK_GTR:
        return ">";
    case PROMQL_TOK_TRIM_UPPER:
        return "</";
    case PROMQL_TOK_TRIM_LOWER:
        return ">/";
    case PROMQL_TOK_LSS:
        return "<";
    case PROMQL_TOK_LTE:
        return "<=";
    case PROMQL_TOK_MOD:
        return "%";
    case PROMQL_TOK_MUL:
        return "*";
    case PROMQL_TOK_NEQ:
        return "!=";
    case PROMQL_TOK_NEQ_REGEX:
        return "!~";
    case PROMQL_TOK_POW:
        return "^";
    case PROMQL_TOK_SUB:
        return "-";
    case PROMQL_TOK_AT:
        return "@";
    default:
        break;
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (keywords[i].tok == t && t != PROMQL_TOK_NUMBER) return keywords[i].word;
    }
    return NULL;
}

/* ---- scanning helpers ---------------------------------------------------------------- */

static int32_t next_rune(promql_lexer *l, uint32_t *width)
{
    if (l->pos >= l->len) {
        *width = 0;
        return EOF_RUNE;
    }
    uint32_t r = promql_lex_rune(l->in + l->pos, l->len - l->pos, width);
    l->pos += *width;
    return (int32_t)r;
}

/* One-rune reader with a single step of backup, as the scanner needs. */
typedef struct reader {
    promql_lexer *l;
    uint32_t width;
} reader;

static int32_t rd_next(reader *r)
{
    return next_rune(r->l, &r->width);
}

static void rd_backup(reader *r)
{
    r->l->pos -= r->width;
}

static int32_t rd_peek(reader *r)
{
    int32_t c = rd_next(r);
    rd_backup(r);
    return c;
}

static bool in_set(int32_t c, const char *set)
{
    return c > 0 && c < 0x80 && strchr(set, (int)c) != NULL;
}

static bool rd_accept(reader *r, const char *set)
{
    if (in_set(rd_next(r), set)) return true;
    rd_backup(r);
    return false;
}

static bool rd_is(reader *r, const char *set)
{
    return in_set(rd_peek(r), set);
}

static bool is_space(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_alpha(int32_t c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int32_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(int32_t c)
{
    return is_alpha(c) || is_digit(c);
}

static void emit(promql_lexer *l, promql_token *t, enum promql_tok type)
{
    t->type = type;
    t->pos = l->start;
    t->len = l->pos - l->start;
    l->start = l->pos;
}

/* Reports an error token at the start of the current token; `fatal` ends
 * the input (Prometheus's lexer stops there). */
static void lex_error(promql_lexer *l, promql_token *t, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lex_error(promql_lexer *l, promql_token *t, bool fatal, const char *fmt, ...)
{
    buf_reset(&l->err);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&l->err, fmt, ap);
    va_end(ap);
    t->type = PROMQL_TOK_ERROR;
    t->pos = l->start;
    t->len = 0;
    if (fatal) l->mode = MODE_DONE;
}

/* Error texts with Go-quoted runes and strings are built piecewise. */
static void err_begin(promql_lexer *l)
{
    buf_reset(&l->err);
}

static void err_end(promql_lexer *l, promql_token *t, bool fatal)
{
    t->type = PROMQL_TOK_ERROR;
    t->pos = l->start;
    t->len = 0;
    if (fatal) l->mode = MODE_DONE;
}

static void err_rune(promql_lexer *l, promql_token *t, const char *prefix, int32_t r,
                     const char *suffix)
{
    err_begin(l);
    buf_puts(&l->err, prefix);
    promql_lex_quote_rune(&l->err, r);
    if (suffix) buf_puts(&l->err, suffix);
    err_end(l, t, true);
}

/* Go's %#U: U+0041 'A' (the character only when printable). */
static void put_unicode(buf *out, uint32_t r)
{
    buf_printf(out, "U+%04X", (unsigned)r);
    if (r <= 0x10FFFF && promql_lex_rune_printable(r)) {
        buf_puts(out, " '");
        if (r == '\\')
            buf_putc(out, '\\');
        else
            quote_rune_body(out, r, 0); /* printable: written as is */
        buf_putc(out, '\'');
    }
}

/* ---- numbers and durations ------------------------------------------------------------ */

/* Scans a number of any form Prometheus's lexer accepts; returns false if
 * what follows cannot be a number (the text read so far is then reported or
 * retried as a duration). */
static bool scan_number(reader *r)
{
    promql_lexer *l = r->l;
    uint32_t initial = l->pos;
    const char *digits = "0123456789";
    if (rd_accept(r, "0") && rd_accept(r, "xX")) {
        rd_accept(r, "_");
        digits = "0123456789abcdefABCDEF";
    }
    bool hex = digits[10] != '\0';
    char cont[32];
    snprintf(cont, sizeof cont, "%s._eE", digits);
    rd_accept(r, ".");
    rd_accept(r, digits);
    bool dot = false, exp = false;
    while (rd_is(r, cont)) {
        if (rd_is(r, ".") && dot) {
            rd_accept(r, ".");
            return false;
        }
        if (rd_is(r, "eE") && exp) {
            rd_accept(r, "eE");
            return false;
        }
        if (rd_accept(r, ".")) {
            dot = true;
            if (rd_accept(r, "_.")) return false;
            if (hex) return false;
            continue;
        }
        if (rd_accept(r, "eE")) {
            exp = true;
            rd_accept(r, "+-");
            if (rd_accept(r, "._eE") || rd_peek(r) == EOF_RUNE) return false;
            continue;
        }
        if (rd_accept(r, "_")) {
            if (rd_accept(r, "._eE") || rd_peek(r) == EOF_RUNE) return false;
            continue;
        }
        while (rd_accept(r, digits)) {
        }
    }
    if (l->pos == initial) return false;
    return !is_alnum(rd_peek(r));
}

/* After the digits of a duration: unit, then more number+unit pairs, and
 * nothing alphanumeric after. Bad unit combinations are caught later by the
 * duration parser. */
static bool accept_duration_rest(reader *r)
{
    if (!rd_accept(r, "smhdwy")) return false;
    rd_accept(r, "s");
    while (rd_accept(r, "0123456789")) {
        while (rd_accept(r, "0123456789")) {
        }
        if (!rd_accept(r, "smhdw")) return false;
        rd_accept(r, "s");
    }
    return !is_alnum(rd_next(r));
}

static void lex_number_or_duration(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    if (scan_number(&r)) {
        emit(l, t, PROMQL_TOK_NUMBER);
        l->mode = MODE_STATEMENTS;
        return;
    }
    if (accept_duration_rest(&r)) {
        rd_backup(&r);
        emit(l, t, PROMQL_TOK_DURATION);
        l->mode = MODE_STATEMENTS;
        return;
    }
    err_begin(l);
    buf_puts(&l->err, "bad number or duration syntax: ");
    promql_lex_quote(&l->err, l->in + l->start, l->pos - l->start);
    err_end(l, t, true);
}

/* step, range, max_of, min_of inside brackets (case-insensitive). */
static bool duration_keyword_start(int32_t c)
{
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    return c == 's' || c == 'r' || c == 'm';
}

static bool scan_duration_keyword(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    while (is_alpha(rd_next(&r))) {
    }
    rd_backup(&r);
    const char *w = l->in + l->start;
    size_t n = l->pos - l->start;
    enum promql_tok k = PROMQL_TOK_IDENTIFIER;
    if (word_eq_ci(w, n, "step"))
        k = PROMQL_TOK_STEP;
    else if (word_eq_ci(w, n, "range"))
        k = PROMQL_TOK_RANGE;
    else if (word_eq_ci(w, n, "max_of"))
        k = PROMQL_TOK_MAX_OF;
    else if (word_eq_ci(w, n, "min_of"))
        k = PROMQL_TOK_MIN_OF;
    if (k == PROMQL_TOK_IDENTIFIER) return false;
    emit(l, t, k);
    return true;
}

/* ---- strings ------------------------------------------------------------------------------ */

/* Checks one escape sequence after the backslash (Go's rules, in strutil;
 * the messages are Prometheus's lexer's); returns false with an error token
 * if it is invalid (the string goes on after the character at fault). */
static bool lex_escape(promql_lexer *l, promql_token *t)
{
    uint32_t bs = l->pos - 1; /* the backslash */
    strutil_unquote_error e;
    int n = strutil_go_unescape(l->in + bs, l->len - bs, (char)l->quote, NULL, &e);
    if (n > 0) {
        l->pos = bs + (uint32_t)n;
        return true;
    }
    reader r = {l, 0};
    switch (e.problem) {
    case STRUTIL_UNQUOTE_UNTERMINATED:
        l->pos = l->len;
        lex_error(l, t, false, "escape sequence not terminated");
        return false;
    case STRUTIL_UNQUOTE_UNKNOWN_ESCAPE: /* at the backslash */
        l->pos = bs + 1;
        err_begin(l);
        buf_puts(&l->err, "unknown escape sequence ");
        put_unicode(&l->err, (uint32_t)rd_next(&r));
        err_end(l, t, false);
        return false;
    case STRUTIL_UNQUOTE_ILLEGAL_CHAR:
        l->pos = bs + (uint32_t)e.at;
        err_begin(l);
        buf_puts(&l->err, "illegal character ");
        put_unicode(&l->err, (uint32_t)rd_next(&r));
        buf_puts(&l->err, " in escape sequence");
        err_end(l, t, false);
        return false;
    default: /* octal above 255, surrogates, above U+10FFFF: after the digits */
        l->pos = bs + (uint32_t)e.at;
        lex_error(l, t, false, "escape sequence is an invalid Unicode code point");
        return false;
    }
}

/* Scans the rest of a "" or '' string; false when an error token was
 * produced (lexing resumes inside the string unless it ended). */
static bool lex_string(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    for (;;) {
        int32_t c = rd_next(&r);
        if (c == '\\') {
            if (!lex_escape(l, t)) {
                l->mode = MODE_STRING;
                return false;
            }
            continue;
        }
        if (c == (int32_t)RUNE_ERROR) {
            lex_error(l, t, false, "invalid UTF-8 rune");
            l->mode = MODE_STRING;
            return false;
        }
        if (c == EOF_RUNE || c == '\n') {
            lex_error(l, t, true, "unterminated quoted string");
            return false;
        }
        if ((uint32_t)c == l->quote) break;
    }
    emit(l, t, PROMQL_TOK_STRING);
    l->mode = MODE_STATEMENTS;
    return true;
}

static bool lex_raw_string(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    for (;;) {
        int32_t c = rd_next(&r);
        if (c == (int32_t)RUNE_ERROR) {
            lex_error(l, t, false, "invalid UTF-8 rune");
            l->mode = MODE_RAW;
            return false;
        }
        if (c == EOF_RUNE) {
            /* Prometheus's lexer reports this again on every later call;
             * one report ends the input here. */
            lex_error(l, t, true, "unterminated raw string");
            return false;
        }
        if ((uint32_t)c == l->quote) break;
    }
    emit(l, t, PROMQL_TOK_STRING);
    l->mode = MODE_STATEMENTS;
    return true;
}

/* ---- identifiers, comments, spaces ----------------------------------------------------------- */

static bool followed_by_left_paren(const promql_lexer *l)
{
    for (uint32_t p = l->pos; p < l->len; p++) {
        char c = l->in[p];
        if (!is_space((unsigned char)c)) return c == '(';
    }
    return false;
}

static void lex_keyword_or_identifier(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    int32_t c;
    while ((c = rd_next(&r)), is_alnum(c) || c == ':') {
    }
    rd_backup(&r);
    const char *w = l->in + l->start;
    size_t n = l->pos - l->start;
    enum promql_tok k = promql_lex_keyword(w, n);
    if (k != PROMQL_TOK_IDENTIFIER) {
        if ((k == PROMQL_TOK_FILL || k == PROMQL_TOK_FILL_LEFT || k == PROMQL_TOK_FILL_RIGHT) &&
            !followed_by_left_paren(l))
            k = PROMQL_TOK_IDENTIFIER;
        emit(l, t, k);
    } else if (memchr(w, ':', n) == NULL) {
        emit(l, t, PROMQL_TOK_IDENTIFIER);
    } else {
        emit(l, t, PROMQL_TOK_METRIC_IDENTIFIER);
    }
}

static void lex_comment(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    l->pos++; /* '#' */
    int32_t c = rd_next(&r);
    while (c != '\r' && c != '\n' && c != EOF_RUNE)
        c = rd_next(&r);
    rd_backup(&r);
    emit(l, t, PROMQL_TOK_COMMENT);
}

static void skip_spaces(promql_lexer *l)
{
    reader r = {l, 0};
    while (is_space(rd_peek(&r)))
        rd_next(&r);
    l->start = l->pos;
}

/* ---- modes --------------------------------------------------------------------------------- */

/* Inside braces: label names, strings, matchers, commas. Returns true when
 * a token was produced. */
static bool lex_inside_braces(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    if (l->pos < l->len && l->in[l->pos] == '#') {
        lex_comment(l, t);
        return true;
    }
    int32_t c = rd_next(&r);
    if (c == EOF_RUNE) {
        lex_error(l, t, true, "unexpected end of input inside braces");
        return true;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    if (is_alpha(c)) {
        while (is_alnum(rd_next(&r))) {
        }
        rd_backup(&r);
        emit(l, t, PROMQL_TOK_IDENTIFIER);
        return true;
    }
    switch (c) {
    case ',':
        emit(l, t, PROMQL_TOK_COMMA);
        return true;
    case '"':
    case '\'':
        l->quote = (uint32_t)c;
        lex_string(l, t);
        return true;
    case '`':
        l->quote = (uint32_t)c;
        lex_raw_string(l, t);
        return true;
    case '=':
        if (rd_next(&r) == '~') {
            emit(l, t, PROMQL_TOK_EQL_REGEX);
        } else {
            rd_backup(&r);
            emit(l, t, PROMQL_TOK_EQL);
        }
        return true;
    case '!': {
        int32_t n = rd_next(&r);
        if (n == '~') {
            emit(l, t, PROMQL_TOK_NEQ_REGEX);
        } else if (n == '=') {
            emit(l, t, PROMQL_TOK_NEQ);
        } else {
            err_rune(l, t, "unexpected character after '!' inside braces: ", n, NULL);
        }
        return true;
    }
    case '{':
        err_rune(l, t, "unexpected left brace ", c, NULL);
        return true;
    case '}':
        emit(l, t, PROMQL_TOK_RIGHT_BRACE);
        l->brace_open = false;
        return true;
    default:
        err_rune(l, t, "unexpected character inside braces: ", c, NULL);
        return true;
    }
}

/* Right after '[' and after operators inside brackets. */
static bool lex_duration_expr(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    int32_t c = rd_next(&r);
    switch (c) {
    case EOF_RUNE:
        lex_error(l, t, true, "unexpected end of input in duration expression");
        return true;
    case ']':
        emit(l, t, PROMQL_TOK_RIGHT_BRACKET);
        l->bracket_open = false;
        l->got_colon = false;
        l->mode = MODE_STATEMENTS;
        return true;
    case ':':
        emit(l, t, PROMQL_TOK_COLON);
        if (!l->got_duration) {
            lex_error(l, t, true, "unexpected colon before duration in duration expression");
            return true;
        }
        if (l->got_colon) {
            lex_error(l, t, true, "unexpected repeated colon in duration expression");
            return true;
        }
        l->got_colon = true;
        return true;
    case '(':
        emit(l, t, PROMQL_TOK_LEFT_PAREN);
        l->paren_depth++;
        return true;
    case ')':
        emit(l, t, PROMQL_TOK_RIGHT_PAREN);
        l->paren_depth--;
        if (l->paren_depth < 0) err_rune(l, t, "unexpected right parenthesis ", c, NULL);
        return true;
    case '+':
        emit(l, t, PROMQL_TOK_ADD);
        return true;
    case '-':
        emit(l, t, PROMQL_TOK_SUB);
        return true;
    case '*':
        emit(l, t, PROMQL_TOK_MUL);
        return true;
    case '/':
        emit(l, t, PROMQL_TOK_DIV);
        return true;
    case '%':
        emit(l, t, PROMQL_TOK_MOD);
        return true;
    case '^':
        emit(l, t, PROMQL_TOK_POW);
        return true;
    case ',':
        emit(l, t, PROMQL_TOK_COMMA);
        return true;
    default:
        break;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    if (c >= 0 && c < 0x80 && duration_keyword_start(c)) {
        if (scan_duration_keyword(l, t)) return true;
        err_rune(l, t, "unexpected character in duration expression: ", c, NULL);
        return true;
    }
    if (is_digit(c) || (c == '.' && is_digit(rd_peek(&r)))) {
        rd_backup(&r);
        l->got_duration = true;
        lex_number_or_duration(l, t);
        return true;
    }
    err_rune(l, t, "unexpected character in duration expression: ", c, NULL);
    return true;
}

static bool lex_statements(promql_lexer *l, promql_token *t)
{
    if (l->brace_open) return lex_inside_braces(l, t);
    if (l->pos < l->len && l->in[l->pos] == '#') {
        lex_comment(l, t);
        return true;
    }
    reader r = {l, 0};
    int32_t c = rd_next(&r);
    if (c == EOF_RUNE) {
        if (l->paren_depth != 0) {
            lex_error(l, t, true, "unclosed left parenthesis");
        } else if (l->bracket_open) {
            lex_error(l, t, true, "unclosed left bracket");
        } else {
            emit(l, t, PROMQL_TOK_EOF);
            l->mode = MODE_DONE;
        }
        return true;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    switch (c) {
    case ',':
        emit(l, t, PROMQL_TOK_COMMA);
        return true;
    case '*':
        emit(l, t, PROMQL_TOK_MUL);
        return true;
    case '/':
        emit(l, t, PROMQL_TOK_DIV);
        return true;
    case '%':
        emit(l, t, PROMQL_TOK_MOD);
        return true;
    case '+':
        emit(l, t, PROMQL_TOK_ADD);
        return true;
    case '-':
        emit(l, t, PROMQL_TOK_SUB);
        return true;
    case '^':
        emit(l, t, PROMQL_TOK_POW);
        return true;
    case '@':
        emit(l, t, PROMQL_TOK_AT);
        return true;
    case '=': {
        int32_t n = rd_peek(&r);
        if (n == '=') {
            rd_next(&r);
            emit(l, t, PROMQL_TOK_EQLC);
        } else if (n == '~') {
            err_rune(l, t, "unexpected character after '=': ", n, NULL);
        } else {
            emit(l, t, PROMQL_TOK_EQL);
        }
        return true;
    }
    case '!': {
        int32_t n = rd_next(&r);
        if (n != '=')
            err_rune(l, t, "unexpected character after '!': ", n, NULL);
        else
            emit(l, t, PROMQL_TOK_NEQ);
        return true;
    }
    case '<':
    case '>': {
        int32_t n = rd_peek(&r);
        if (n == '=') {
            rd_next(&r);
            emit(l, t, c == '<' ? PROMQL_TOK_LTE : PROMQL_TOK_GTE);
        } else if (n == '/') {
            rd_next(&r);
            emit(l, t, c == '<' ? PROMQL_TOK_TRIM_UPPER : PROMQL_TOK_TRIM_LOWER);
        } else {
            emit(l, t, c == '<' ? PROMQL_TOK_LSS : PROMQL_TOK_GTR);
        }
        return true;
    }
    case '"':
    case '\'':
        l->quote = (uint32_t)c;
        lex_string(l, t);
        return true;
    case '`':
        l->quote = (uint32_t)c;
        lex_raw_string(l, t);
        return true;
    case '(':
        emit(l, t, PROMQL_TOK_LEFT_PAREN);
        l->paren_depth++;
        return true;
    case ')':
        emit(l, t, PROMQL_TOK_RIGHT_PAREN);
        l->paren_depth--;
        if (l->paren_depth < 0) err_rune(l, t, "unexpected right parenthesis ", c, NULL);
        return true;
    case '{':
        emit(l, t, PROMQL_TOK_LEFT_BRACE);
        l->brace_open = true;
        return true;
    case '[':
        if (l->bracket_open) {
            err_rune(l, t, "unexpected left bracket ", c, NULL);
            return true;
        }
        l->got_colon = false;
        emit(l, t, PROMQL_TOK_LEFT_BRACKET);
        if (is_space(rd_peek(&r))) skip_spaces(l);
        l->bracket_open = true;
        l->mode = MODE_DURATION;
        return true;
    case ']':
        if (!l->bracket_open) {
            err_rune(l, t, "unexpected right bracket ", c, NULL);
            return true;
        }
        emit(l, t, PROMQL_TOK_RIGHT_BRACKET);
        l->bracket_open = false;
        return true;
    default:
        break;
    }
    if (is_digit(c) || (c == '.' && is_digit(rd_peek(&r)))) {
        rd_backup(&r);
        lex_number_or_duration(l, t);
        return true;
    }
    if (is_alpha(c) || c == ':') {
        if (!l->bracket_open) {
            rd_backup(&r);
            lex_keyword_or_identifier(l, t);
            return true;
        }
        if (c == ':') {
            if (l->got_colon) {
                err_rune(l, t, "unexpected colon ", c, NULL);
                return true;
            }
            emit(l, t, PROMQL_TOK_COLON);
            l->got_colon = true;
            return true;
        }
        if (duration_keyword_start(c) && scan_duration_keyword(l, t)) return true;
        err_begin(l);
        buf_puts(&l->err, "unexpected character: ");
        promql_lex_quote_rune(&l->err, c);
        buf_puts(&l->err, ", expected ");
        promql_lex_quote_rune(&l->err, ':');
        err_end(l, t, true);
        return true;
    }
    err_rune(l, t, "unexpected character: ", c, NULL);
    return true;
}

bool promql_lex_done(const promql_lexer *l)
{
    return l->mode == MODE_DONE;
}

void promql_lex_next(promql_lexer *l, promql_token *t)
{
    for (;;) {
        bool got;
        switch (l->mode) {
        case MODE_DONE:
            t->type = PROMQL_TOK_EOF;
            t->pos = l->pos;
            t->len = 0;
            return;
        case MODE_STRING:
            got = (lex_string(l, t), true);
            break;
        case MODE_RAW:
            got = (lex_raw_string(l, t), true);
            break;
        case MODE_DURATION:
            got = lex_duration_expr(l, t);
            break;
        default:
            got = lex_statements(l, t);
            break;
        }
        if (got) return;
    }
}
