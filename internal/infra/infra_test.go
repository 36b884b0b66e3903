package infra

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mlcd-dev/mlcd/examples"
)

const providers = `terraform {
  required_providers {
    google = { source = "hashicorp/google", version = "~> 6.0" }
  }
}
variable "region" { type = string }
`

func TestValidateExample(t *testing.T) {
	sub, err := fs.Sub(examples.MLDeployments, "ml-deployments")
	if err != nil {
		t.Fatal(err)
	}
	findings, err := Validate(sub, "infrastructure/terraform")
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 0 {
		t.Fatalf("the example's terraform has findings: %v", findings)
	}
	res, err := Resources(sub, "infrastructure/terraform")
	if err != nil || res["google_container_node_pool.gpu_pool"] == nil || len(res) != 5 {
		t.Fatalf("resources %v %v", keys(res), err)
	}
}

func keys(m map[string]*Resource) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestValidateFindings(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		want  []string
	}{
		"undeclared variable": {map[string]string{"tf/main.tf": providers + `resource "google_compute_network" "vpc" {
  name = "ml-${var.zone}"
}`}, []string{`tf/main.tf:8: undeclared: reference to undeclared variable "zone"`}},
		"undeclared resource and local": {map[string]string{"tf/main.tf": providers + `resource "google_compute_network" "vpc" { name = "ml" }
resource "google_compute_subnetwork" "sub" {
  network = google_compute_network.vcp.id
  region  = local.where
}`}, []string{`tf/main.tf:9: undeclared: reference to undeclared resource "google_compute_network.vcp"`, `tf/main.tf:10: undeclared: reference to undeclared local value "where"`}},
		"syntax error": {map[string]string{"tf/main.tf": providers + `resource "google_compute_network" "vpc" {
  name = "ml"
`}, []string{"tf/main.tf:7: syntax: Unclosed configuration block"}},
		"module outside the repository": {map[string]string{"tf/main.tf": providers + `module "vpc" { source = "../../../outside" }`}, []string{"tf/main.tf:7: module_source: module \"vpc\": source ../../../outside leaves the repository"}},
		"missing local module":          {map[string]string{"tf/main.tf": providers + `module "vpc" { source = "./modules/vpc" }`}, []string{"module_source: module \"vpc\": source ./modules/vpc does not exist"}},
		"duplicate":                     {map[string]string{"tf/a.tf": providers, "tf/b.tf": `variable "region" { type = string }`}, []string{"tf/b.tf:1: duplicate: variable var.region is declared twice (first at tf/a.tf:6)"}},
		"no required_providers":         {map[string]string{"tf/main.tf": `resource "google_compute_network" "vpc" { name = "ml" }`}, []string{"required_providers: module tf uses providers but has no terraform"}},
		"provider not listed":           {map[string]string{"tf/main.tf": providers + `resource "aws_s3_bucket" "b" { bucket = "x" }`}, []string{`required_providers: provider "aws" is used but not listed`}},
		"fine: dynamic iterator, for expression, local module": {map[string]string{
			"tf/main.tf": providers + `resource "google_compute_firewall" "fw" {
  name = "ml"
  dynamic "allow" {
    for_each = [for p in [80, 443] : tostring(p)]
    content { ports = [allow.value] }
  }
}
module "vpc" {
  source = "./modules/vpc"
  region = var.region
}
output "net" { value = module.vpc.name }`,
			"tf/modules/vpc/main.tf": `variable "region" {}
resource "google_compute_network" "n" { name = var.region }
output "name" { value = google_compute_network.n.name }`,
		}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, s := range c.files {
				fsys[p] = &fstest.MapFile{Data: []byte(s)}
			}
			findings, err := Validate(fsys, "tf")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range findings {
				got = append(got, f.String())
			}
			all := strings.Join(got, "\n")
			if len(c.want) == 0 && len(got) > 0 {
				t.Fatalf("findings in valid code:\n%s", all)
			}
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("want %q in:\n%s", w, all)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("%d findings, want %d:\n%s", len(got), len(c.want), all)
			}
		})
	}
}

func TestDiffFlagsNodePool(t *testing.T) {
	sub, _ := fs.Sub(examples.MLDeployments, "ml-deployments")
	base, err := Resources(sub, "infrastructure/terraform")
	if err != nil {
		t.Fatal(err)
	}
	gke, _ := fs.ReadFile(sub, "infrastructure/terraform/gke-cluster.tf")
	head := fstest.MapFS{}
	fs.WalkDir(sub, "infrastructure/terraform", func(p string, d fs.DirEntry, _ error) error {
		if !d.IsDir() {
			data, _ := fs.ReadFile(sub, p)
			head[p] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	head["infrastructure/terraform/gke-cluster.tf"] = &fstest.MapFile{Data: []byte(strings.Replace(string(gke), "max_node_count = 20", "max_node_count = 40", 1))}
	head["infrastructure/terraform/extra.tf"] = &fstest.MapFile{Data: []byte(`resource "google_storage_bucket" "datasets" { name = "ml-datasets" }`)}
	delete(head, "infrastructure/terraform/feature-store.tf")
	h, err := Resources(head, "infrastructure/terraform")
	if err != nil {
		t.Fatal(err)
	}
	changes := Diff(base, h)
	var got []string
	for _, c := range changes {
		s := c.Action + " " + c.Address
		for _, a := range c.Attrs {
			s += " " + a.Path + ": " + a.From + " → " + a.To
		}
		if c.Review != "" {
			s += " [review: " + c.Review + "]"
		}
		got = append(got, s)
	}
	want := []string{
		"changed google_container_node_pool.gpu_pool autoscaling[0].max_node_count: 20 → 40 [review: GPU node pool: autoscaling[0].max_node_count]",
		"removed google_redis_instance.feature_store",
		"added google_storage_bucket.datasets",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
