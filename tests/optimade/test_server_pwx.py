"""DFT provider fields read from the pw.x calculations of a real LabelWorkChain (needs pw.x)."""

import pytest


@pytest.mark.pwx
def test_dft_provider_fields(h2_scan_label):
    from fastapi.testclient import TestClient

    from aiida_reactmlip.optimade.app import create_reactmlip_app

    dataset = h2_scan_label.outputs.dataset
    client = TestClient(create_reactmlip_app(), base_url="http://example.org")
    body = client.get(f'/v1/structures?filter=_reactmlip_dataset_uuid="{dataset.uuid}"&page_limit=100').json()
    assert body["meta"]["data_returned"] == dataset.n_frames == 7
    for entry in body["data"]:
        a = entry["attributes"]
        index = a["_reactmlip_frame_index"]
        source = dataset.frame_info[index]["source_uuid"]
        assert a["_reactmlip_source_uuid"] == source
        from aiida import orm

        calc = orm.load_node(source)
        system = calc.inputs.parameters.get_dict()["SYSTEM"]
        assert a["_reactmlip_dft_code"] == "Quantum ESPRESSO pw.x"
        assert a["_reactmlip_dft_code_version"] == calc.outputs.output_parameters["creator_version"]
        assert a["_reactmlip_functional"] == "PBE"
        assert a["_reactmlip_pseudopotentials"] == {"H": calc.inputs.pseudos["H"].filename}
        assert a["_reactmlip_pseudo_family"] == "reactmlip/debian-pbe"
        assert a["_reactmlip_ecutwfc"] == float(system["ecutwfc"]) and a["_reactmlip_ecutrho"] == float(system["ecutrho"])
        mesh, offset = calc.inputs.kpoints.get_kpoints_mesh()
        assert a["_reactmlip_kpoints"] == list(mesh)
        assert a["_reactmlip_energy"] == dataset.frames.energies[index]
    filtered = client.get(f'/v1/structures?filter=_reactmlip_functional="PBE" AND _reactmlip_dataset_uuid="{dataset.uuid}"')
    assert filtered.json()["meta"]["data_returned"] == 7
