# Writes a deterministic C++ file (awk -v N=60 -f gen_cc.awk): templates,
# standard containers, lambdas and strings, for cc1plus.
BEGIN {
  if (N == 0) N = 60
  print "#include <algorithm>\n#include <map>\n#include <memory>\n#include <numeric>\n#include <string>\n#include <unordered_map>\n#include <vector>\n"
  print "template <typename T, int K> struct Box { T v[K]; T sum() const { return std::accumulate(v, v + K, T{}); } };"
  for (i = 0; i < N; i++) {
    printf "struct Rec%d { std::string name; std::vector<int> xs; std::map<std::string, double> m; };\n", i
    printf "std::vector<std::string> make%d(int n) {\n", i
    printf "  std::vector<Rec%d> rs;\n  for (int k = 0; k < n; k++) {\n", i
    printf "    Rec%d r{\"r\" + std::to_string(k * %d), {}, {}};\n", i, i + 1
    printf "    for (int j = 0; j < (k %% %d); j++) { r.xs.push_back(j * %d); r.m[std::to_string(j)] = j / %d.0; }\n", (i % 9) + 2, i, i + 1
    printf "    rs.push_back(std::move(r));\n  }\n"
    printf "  std::sort(rs.begin(), rs.end(), [](const Rec%d &a, const Rec%d &b) { return a.xs.size() != b.xs.size() ? a.xs.size() < b.xs.size() : a.name < b.name; });\n", i, i
    printf "  std::unordered_map<std::string, std::unique_ptr<Box<long, %d>>> u;\n", (i % 5) + 1
    printf "  std::vector<std::string> out;\n"
    printf "  for (auto &r : rs) { auto &b = u[r.name]; if (!b) b = std::make_unique<Box<long, %d>>(); out.push_back(r.name + \":\" + std::to_string(b->sum() + (long)r.m.size())); }\n", (i % 5) + 1
    printf "  return out;\n}\n"
  }
}
