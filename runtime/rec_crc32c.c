/* rec_crc32c.c — CRC-32C (Castagnoli), the checksum of .rec files.
 *
 * The polynomial 0x1edc6f41, bit-reflected (0x82f63b78), with the register
 * started at 0xffffffff and inverted at the end: the CRC of iSCSI (RFC 3720)
 * and ext4. It catches every burst error up to 32 bits, so a flipped byte in
 * a checksummed region is always detected. Computed "slicing by 8": eight
 * 256-entry tables, built once (pthread_once), let the loop fold eight
 * input bytes per step: table t maps a byte to its CRC contribution when t
 * more zero bytes follow it. Bytes are assembled explicitly, so the code
 * does not depend on the host's byte order or on alignment.
 */
#include "rec_internal.h"

#include <pthread.h>

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++) crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t rec_crc32c(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t a = crc ^ rec_get32(p), b = rec_get32(p + 4);
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^ crc_tab[5][(a >> 16) & 0xff] ^ crc_tab[4][a >> 24] ^
              crc_tab[3][b & 0xff] ^ crc_tab[2][(b >> 8) & 0xff] ^ crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
