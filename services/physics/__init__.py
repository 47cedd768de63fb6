"""The physics process: the 1 kHz wave field on a d-dimensional torus.

Reads NeurochemicalState (seqlock ``control``) and the interrupt word at each tick
start; publishes PhysicsTelemetry (seqlock ``telemetry``), its heartbeat and its stats.

The model and its kernels, one module per concept (docs/physics.md):

``lattice``       the periodic grid, its areas (slabs along axis 0), shift slices
``laplacian``     the conductance-weighted Laplacian L_g
``cfl``           the stability bound on v² L_g and the speed it allows
``plasticity``    the Hebbian update of the edge conductances
``noise``         counter-based complex Gaussian noise (same stream on CPU and GPU)
``integrator``    the leapfrog step: half kick, drift, fused force sweep, half kick
``entropy``       exact and sampled (unbiased) Shannon entropy
``reductions``    energy, Hamiltonian, costs, per-area activity and metric gradient
``coefficients``  per-area multipliers from a NeurochemicalState; the tick table
``field``         the preallocated state and its ``step`` (NumPy twin)
``cuda_source``   CUDA source of the fused kernels (and its host build)
``fused``, ``gpu``, ``host_kernels``  the field on the fused kernels (CuPy; CPU check)
``backend``       numpy / cupy selection with a GPU probe
"""
