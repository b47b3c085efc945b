/* opus_bench.c: reference encode timing against the system libopus (compiled by scripts/bench/codec.ts).
 *
 * usage: opus_bench PCM_FILE RATE FRAME_MS BITRATE COMPLEXITY REPEATS [PACKETS_OUT]
 *   PCM_FILE is raw 16-bit little-endian mono PCM at RATE. The whole file is encoded REPEATS times with a
 *   fresh VOIP encoder each time (same settings as the project path); prints one JSON line with the best
 *   and total encode wall time and the best CPU time (CLOCK_PROCESS_CPUTIME_ID) in seconds, the packet bytes and the encoder lookahead. PACKETS_OUT, if
 *   given, receives the packets of the first repeat as [u16 little-endian length][bytes]... for comparison.
 */
#include <opus/opus.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s PCM_FILE RATE FRAME_MS BITRATE COMPLEXITY REPEATS [PACKETS_OUT]\n", argv[0]);
    return 2;
  }
  int rate = atoi(argv[2]), frame_ms = atoi(argv[3]), bitrate = atoi(argv[4]);
  int complexity = atoi(argv[5]), repeats = atoi(argv[6]);
  if (repeats < 1 || repeats > 10000) repeats = 1;
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror("open pcm"); return 1; }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (bytes <= 0 || bytes > (1L << 30)) { fprintf(stderr, "bad pcm size\n"); return 1; }
  opus_int16 *pcm = malloc((size_t)bytes);
  if (!pcm || fread(pcm, 1, (size_t)bytes, f) != (size_t)bytes) { fprintf(stderr, "read failed\n"); return 1; }
  fclose(f);
  long samples = bytes / 2;
  int frame = rate * frame_ms / 1000;
  long frames = samples / frame;
  FILE *out = argc > 7 ? fopen(argv[7], "wb") : NULL;
  unsigned char packet[4000];
  double best = 1e9, total = 0, best_cpu = 1e9;
  long packet_bytes = 0;
  opus_int32 lookahead = -1;
  for (int r = 0; r < repeats; r++) {
    int err;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    OpusEncoder *enc = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
    if (err != OPUS_OK) { fprintf(stderr, "create: %s\n", opus_strerror(err)); return 1; }
    opus_encoder_ctl(enc, OPUS_SET_BITRATE(bitrate));
    opus_encoder_ctl(enc, OPUS_SET_COMPLEXITY(complexity));
    opus_encoder_ctl(enc, OPUS_SET_DTX(0));
    opus_encoder_ctl(enc, OPUS_SET_INBAND_FEC(0));
    opus_encoder_ctl(enc, OPUS_SET_PACKET_LOSS_PERC(0));
    opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&lookahead));
    long sum = 0;
    for (long i = 0; i < frames; i++) {
      int n = opus_encode(enc, pcm + i * frame, frame, packet, sizeof packet);
      if (n < 0) { fprintf(stderr, "encode: %s\n", opus_strerror(n)); return 1; }
      sum += n;
      if (out && r == 0) {
        unsigned char len[2] = {(unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
        fwrite(len, 1, 2, out);
        fwrite(packet, 1, (size_t)n, out);
      }
    }
    opus_encoder_destroy(enc);
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    total += dt;
    if (dc < best_cpu) best_cpu = dc;
    if (dt < best) best = dt;
    packet_bytes = sum;
  }
  if (out) fclose(out);
  printf("{\"version\":\"%s\",\"best_s\":%.9f,\"best_cpu_s\":%.9f,\"total_s\":%.9f,\"repeats\":%d,\"frames\":%ld,\"bytes\":%ld,"
         "\"lookahead\":%d,\"audio_s\":%.6f}\n",
         opus_get_version_string(), best, best_cpu, total, repeats, frames, packet_bytes, (int)lookahead,
         (double)(frames * frame) / rate);
  free(pcm);
  return 0;
}
